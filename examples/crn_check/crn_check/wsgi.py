"""WSGI entry point: gunicorn crn_check.wsgi."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crn_check.settings")

application = get_wsgi_application()
