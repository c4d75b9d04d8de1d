"""The crn_check project: business registration numbers checked against Hometax.

Celery's Django guide adds ``from .celery import app as celery_app`` here. With celeriac
it is not needed: the ``celeriac.contrib.django`` app imports ``crn_check.celery`` once
Django's apps are loaded, which ``app.autodiscover_tasks()`` in that module requires.
"""
