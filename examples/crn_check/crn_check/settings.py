"""Settings for the crn_check project: SQLite for Django, a separate SQLite file for celeriac.

Environment overrides: DJANGO_SECRET_KEY, DJANGO_DEBUG, CRN_CHECK_DB (Django's database
file), CELERY_BROKER_URL, CELERY_RESULT_BACKEND, HOMETAX_URL.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-crn-check-demo-only-never-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: the docs work offline
    "celeriac.contrib.django",
    "checks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "crn_check.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "crn_check.wsgi.application"
ASGI_APPLICATION = "crn_check.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CRN_CHECK_DB") or BASE_DIR / "db.sqlite3",
        "OPTIONS": {
            # The worker writes while the web process reads: WAL lets both go on, and
            # IMMEDIATE transactions take the write lock up front instead of failing to
            # upgrade to it half-way (Django 5.1+). synchronous=NORMAL: with WAL a commit
            # survives a crash of any process and skips an fsync per row written.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "Asia/Seoul"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

# --- celeriac, under Celery's setting names -----------------------------------------------

# The broker is its own SQLite file, never Django's database (DESIGN: SQLite broker).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or f"sqlite:///{BASE_DIR / 'celeriac-broker.db'}"
# Results in the broker's file: the fastest choice on SQLite. For results as Django
# rows, visible in the admin under "celeriac task results", use:
#     CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
# Keep each task's arguments with its result, so a failed check still names its number.
CELERY_RESULT_EXTENDED = True
CELERY_WORKER_CONCURRENCY = 500  # checks wait on the network; one process holds hundreds

# --- the tax office's service ----------------------------------------------------------

# The real service is https://teht.hometax.go.kr/wqAction.do. Unset, this points at the
# bundled stand-in: python -m celeriac.demo.standin --port 8123
HOMETAX_URL = os.environ.get("HOMETAX_URL") or "http://127.0.0.1:8123/wqAction.do"

# --- the API ---------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "crn_check API",
    "DESCRIPTION": (
        "Checks Korean business registration numbers (사업자등록번호) against the tax "
        "office's status service, one celeriac task per number."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
