"""celeriac for Django projects: add ``"celeriac.contrib.django"`` to ``INSTALLED_APPS``.

What the app gives a project written the Celery way (``proj/celery.py`` with
``app.config_from_object("django.conf:settings", namespace="CELERY")`` and
``app.autodiscover_tasks()``, ``CELERY_BROKER_URL`` and friends in settings):

- the project's app is loaded once Django's apps are ready (``CELERIAC_APP = "proj.celery:app"``
  in settings, else the ``<project>.celery`` module next to the settings module, else one
  made from the ``CELERY_*`` settings), so its tasks are registered in every Django process;
- ``task.delay_on_commit()`` / ``apply_async_on_commit()``: send once the transaction commits;
- ``result_backend = "django-db"`` (or ``"django://"``): results as Django models, with an admin;
- ``python manage.py celeriac worker ...`` (and every other ``celeriac`` sub-command);
- ``celeriac.contrib.django.tasks.CeleriacBackend``: a backend for Django's Tasks framework.

Nothing here imports Django at package import time.
"""
