"""Django settings for tests/django: the crn_check example's, plus a Tasks backend.

The test process reads these names through ``settings.configure()`` (conftest.py), so
``DJANGO_SETTINGS_MODULE`` stays unset for the rest of the suite; worker subprocesses get
``DJANGO_SETTINGS_MODULE=tests.django.settings`` and the database file in
``CRN_CHECK_DB``. Needs ``examples/crn_check`` on ``sys.path``.
"""

from crn_check.settings import *  # noqa: F403

CELERIAC_APP = "crn_check.celery:app"

# tests.django.djtasks is no installed app's tasks.py: workers import it by name.
CELERY_IMPORTS = ["tests.django.djtasks"]

TASKS = {
    "default": {
        "BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend",
        "QUEUES": ["default", "emails"],
    }
}
