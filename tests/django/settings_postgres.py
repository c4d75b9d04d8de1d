"""tests/django's settings plus two Django connections to the test PostgreSQL server.

``pg`` names the database the PostgreSQL broker uses in these tests (the server and
database of ``CELERIAC_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``),
so a ``delay()`` inside ``transaction.atomic(using="pg")`` enqueues in that transaction;
``pg_other`` is the same server's ``postgres`` database, which the broker never uses.
Worker subprocesses get ``DJANGO_SETTINGS_MODULE=tests.django.settings_postgres``; the
test process adds the same two entries to its connections for the tests that need them
(``test_postgres_transaction.py``).
"""

import os
from urllib.parse import unquote, urlsplit

from tests.django.settings import *  # noqa: F403
from tests.django.settings import CELERY_IMPORTS, DATABASES

_SERVER = urlsplit(os.environ.get("CELERIAC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))

POSTGRES_DATABASE = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": _SERVER.path.lstrip("/") or "test",
    "USER": unquote(_SERVER.username or "postgres"),
    "PASSWORD": unquote(_SERVER.password or ""),
    "HOST": _SERVER.hostname or "127.0.0.1",
    "PORT": str(_SERVER.port or 5432),
}
OTHER_POSTGRES_DATABASE = {**POSTGRES_DATABASE, "NAME": "postgres"}

DATABASES = {**DATABASES, "pg": POSTGRES_DATABASE, "pg_other": OTHER_POSTGRES_DATABASE}

CELERY_IMPORTS = [*CELERY_IMPORTS, "tests.django.pgtasks"]
