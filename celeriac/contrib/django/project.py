"""The Django project's celeriac app, with Django set up first.

``celeriac -A celeriac.contrib.django.project worker`` runs a worker for the project named
by ``DJANGO_SETTINGS_MODULE``; ``python manage.py celeriac worker`` does the same. The
project's own ``celery.py`` cannot be passed to ``-A`` directly: its
``app.autodiscover_tasks()`` needs Django's apps loaded, and nothing else loads them
before it runs.
"""

from __future__ import annotations

import os

import django
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .discovery import load_project_app

if not apps.ready:
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ImproperlyConfigured(
            "-A celeriac.contrib.django.project needs DJANGO_SETTINGS_MODULE; e.g. "
            "DJANGO_SETTINGS_MODULE=proj.settings celeriac -A celeriac.contrib.django.project worker"
        )
    django.setup()

app = load_project_app(required=True)
