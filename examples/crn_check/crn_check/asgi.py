"""ASGI entry point: uvicorn crn_check.asgi:application."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crn_check.settings")

application = get_asgi_application()
