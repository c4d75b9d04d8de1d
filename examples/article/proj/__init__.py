# Celery's layout: importing the package loads the app, so `celeriac -A proj` finds it.
from .celery import app as celery_app

__all__ = ("celery_app",)
