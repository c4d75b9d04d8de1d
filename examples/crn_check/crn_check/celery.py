"""The celeriac app, written as Celery's Django guide writes ``proj/celery.py``."""

import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crn_check.settings")

app = Celery("crn_check")

# Every CELERY_* setting is read: CELERY_BROKER_URL as broker_url, and so on.
app.config_from_object("django.conf:settings", namespace="CELERY")

# Registers the tasks in tasks.py of every installed app (checks.tasks here).
app.autodiscover_tasks()
