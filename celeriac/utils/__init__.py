"""Helpers under Celery's module paths (``celery.utils.log`` is ``celeriac.utils.log``)."""
