"""A task for test_postgres_transaction.py: it looks for the row its caller committed with it."""

from __future__ import annotations

from crn_check.celery import app
from django.db import connections


@app.task  # the project's app, as checks.tasks: bound to it whichever app was made last
def find_order(schema: str, order_id: str) -> int:
    """How many ``orders`` rows have ``order_id`` (1: the caller's transaction committed before
    the task could start); each run is recorded in ``runs``."""
    with connections["pg"].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {schema}.orders WHERE id = %s", [order_id])
        found = int(cursor.fetchone()[0])
        cursor.execute(f"INSERT INTO {schema}.runs (order_id) VALUES (%s)", [order_id])
    return found
