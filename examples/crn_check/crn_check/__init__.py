"""The crn_check project.

As Celery's Django guide has it: importing the app here makes sure it is loaded when
Django starts, so ``@shared_task`` functions bind to it.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
