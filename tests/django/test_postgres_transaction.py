"""``delay()`` inside ``transaction.atomic()`` with the PostgreSQL broker on Django's own database.

The messages are written on Django's connection, in the caller's transaction: a rolled-back
block or view enqueues nothing, a committed one commits its messages with its rows (and a
worker finds them), nothing is visible or announced before the commit. Outside a
transaction, or on another database, ``delay()`` sends at once as usual.

The test process adds the ``pg`` and ``pg_other`` connections of ``settings_postgres.py``
for these tests only (pytest-django is left out of them: it would flush or recreate a real
database); each test gets its own celeriac schema and a schema for its ``orders`` rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path

from celeriac import Celery, group
from celeriac._bridge import run_sync
from celeriac.exceptions import DuplicateTaskError

from ..conftest import POSTGRES_URL, postgres_test_url
from . import settings_postgres
from .pgtasks import find_order
from .workers import celeriac_worker

psycopg = pytest.importorskip("psycopg")

from celeriac.servers.postgres import on_django  # noqa: E402
from celeriac.servers.postgres.connection import parse_url  # noqa: E402

ALIASES = {"pg": settings_postgres.POSTGRES_DATABASE, "pg_other": settings_postgres.OTHER_POSTGRES_DATABASE}


class Boom(Exception):
    pass


def sql(query: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement on a connection of the test's own: what another process would see."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


@dataclass
class Setup:
    app: Celery
    broker_url: str
    schema: str  # celeriac's tables
    rows: str  # the schema of the test's own orders and runs tables

    def message_ids(self) -> list[str]:
        return sorted(r[0] for r in sql(f"SELECT task_id FROM {self.schema}.messages"))

    def add_order(self, order_id: str, alias: str = "pg") -> None:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"INSERT INTO {self.rows}.orders (id) VALUES (%s)", [order_id])


@pytest.fixture
def django_postgres(django_db_blocker: Any) -> Iterator[None]:
    """The ``pg`` and ``pg_other`` Django connections, with database access allowed."""
    for alias, entry in ALIASES.items():
        connections.settings[alias] = connections.configure_settings(
            {"default": connections.settings["default"], alias: dict(entry)})[alias]
    try:
        with django_db_blocker.unblock():
            yield
            for alias in ALIASES:
                connections[alias].close()
    finally:
        for alias in ALIASES:
            with contextlib.suppress(AttributeError):
                del connections[alias]
            del connections.settings[alias]


@pytest.fixture
def setup(app: Celery, django_postgres: None) -> Iterator[Setup]:
    """The project's app on a fresh PostgreSQL schema of the ``pg`` database; results there too."""
    with postgres_test_url("dj") as url:
        rows = f"t_djrows_{uuid.uuid4().hex[:12]}"
        sql(f"CREATE SCHEMA {rows}")
        sql(f"CREATE TABLE {rows}.orders (id text PRIMARY KEY)")
        sql(f"CREATE TABLE {rows}.runs (order_id text NOT NULL)")
        saved = (app.conf.broker_url, app.conf.result_backend)
        run_sync(app.close())
        app.conf.broker_url = app.conf.result_backend = url
        run_sync(_depths(app))  # celeriac's tables made now, not by the first send
        try:
            yield Setup(app, url, parse_url(url).schema, rows)
        finally:
            run_sync(app.close())
            app.conf.broker_url, app.conf.result_backend = saved
            sql(f"DROP SCHEMA IF EXISTS {rows} CASCADE")


# --- which connection --------------------------------------------------------------


@pytest.mark.parametrize(("django_entry", "same"), [
    ({"NAME": "test", "HOST": "127.0.0.1", "PORT": "5432"}, True),
    ({"NAME": "test", "HOST": "localhost", "PORT": 5432}, True),
    ({"NAME": "test", "HOST": "", "PORT": ""}, True),  # libpq's defaults: this machine, 5432
    ({"NAME": "test", "HOST": "::1", "PORT": "5432"}, True),
    ({"NAME": "other", "HOST": "127.0.0.1", "PORT": "5432"}, False),
    ({"NAME": "test", "HOST": "127.0.0.1", "PORT": "5433"}, False),
    ({"NAME": "test", "HOST": "db.example.com", "PORT": "5432"}, False),
    ({"NAME": "", "HOST": "127.0.0.1", "PORT": "5432"}, False),
])
def test_a_django_connection_joins_only_on_the_brokers_own_database(django_entry: dict[str, Any], same: bool) -> None:
    target = parse_url("postgresql://celeriac@127.0.0.1/test?schema=anything")
    assert on_django.same_database(target, django_entry) is same


# --- the transaction decides -------------------------------------------------------


def test_a_rolled_back_block_enqueues_nothing(setup: Setup) -> None:
    with pytest.raises(Boom), transaction.atomic(using="pg"):
        setup.add_order("o1")
        find_order.delay(setup.rows, "o1")
        find_order.apply_async((setup.rows, "o1"), countdown=60, queue="slow")
        group(find_order.s(setup.rows, f"g{i}") for i in range(3)).apply_async()
        assert len(setup.message_ids()) == 0  # and not in the broker before the block ends either
        raise Boom
    assert setup.message_ids() == []
    assert run_sync(_depths(setup.app)) == {}


def test_nothing_is_seen_or_announced_before_the_commit(setup: Setup) -> None:
    channel = sql(f"SELECT {setup.schema}.queue_channel('celery')")[0][0]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as listener:
        listener.execute(f'LISTEN "{channel}"')
        with transaction.atomic(using="pg"):
            setup.add_order("o1")
            sent = [find_order.delay(setup.rows, "o1")]
            sent += group(find_order.s(setup.rows, f"g{i}") for i in range(2)).apply_async().results
            assert setup.message_ids() == []  # another connection (a worker) sees nothing yet
            assert run_sync(_depths(setup.app)) == {}  # nor does the broker's own pool
            assert list(listener.notifies(timeout=0.2)) == []  # and no idle worker was woken
        assert setup.message_ids() == sorted(r.id for r in sent)
        # NOTIFY is delivered at the commit: a worker waiting on the queue wakes now.
        assert [n.channel for n in listener.notifies(timeout=10, stop_after=1)] == [channel]


def test_a_rolled_back_savepoint_drops_only_its_own_messages(setup: Setup) -> None:
    with transaction.atomic(using="pg"):
        kept = find_order.delay(setup.rows, "before")
        with pytest.raises(Boom), transaction.atomic(using="pg"):
            dropped = find_order.delay(setup.rows, "inner")
            raise Boom
        also_kept = find_order.delay(setup.rows, "after")
    ids = setup.message_ids()
    assert ids == sorted([kept.id, also_kept.id]) and dropped.id not in ids


def test_a_duplicate_id_is_refused_and_the_transaction_goes_on(setup: Setup) -> None:
    find_order.apply_async((setup.rows, "x"), task_id="pending-outside")
    with transaction.atomic(using="pg"):
        find_order.apply_async((setup.rows, "a"), task_id="same")
        with pytest.raises(DuplicateTaskError, match="same"):
            find_order.apply_async((setup.rows, "b"), task_id="same")
        with pytest.raises(DuplicateTaskError, match="pending-outside"):
            find_order.apply_async((setup.rows, "c"), task_id="pending-outside")
        find_order.apply_async((setup.rows, "d"), task_id="same", on_duplicate="ignore")
        setup.add_order("o1")  # the caller's transaction is still usable
    assert setup.message_ids() == ["pending-outside", "same"]
    assert sql(f"SELECT id FROM {setup.rows}.orders") == [("o1",)]


def test_outside_a_transaction_it_sends_at_once(setup: Setup) -> None:
    sent = find_order.delay(setup.rows, "o1")
    assert setup.message_ids() == [sent.id]


def test_a_transaction_on_another_database_is_not_joined(setup: Setup) -> None:
    with pytest.raises(Boom), transaction.atomic(using="pg_other"):
        with connections["pg_other"].cursor() as cursor:
            cursor.execute("SELECT 1")
        sent = find_order.delay(setup.rows, "o1")
        assert setup.message_ids() == [sent.id]  # sent at once, on the broker's own connection
        raise Boom
    assert setup.message_ids() == [sent.id]  # and the rollback elsewhere did not take it back


def test_a_message_over_the_size_limit_is_refused_in_a_transaction_too(setup: Setup) -> None:
    setup.app.conf.broker_url = setup.app.conf.result_backend = f"{setup.broker_url}&max_message_size=2000"
    run_sync(setup.app.close())
    from celeriac.servers.postgres import MessageTooLarge

    with transaction.atomic(using="pg"):
        with pytest.raises(MessageTooLarge, match="max_message_size"):
            find_order.delay(setup.rows, "x" * 3000)
        find_order.delay(setup.rows, "small")
    assert len(setup.message_ids()) == 1


# --- views, and a worker -----------------------------------------------------------


def place_order(request: HttpRequest) -> HttpResponse:
    """A view as a project writes one: the row and its task in one transaction."""
    order_id, rows = request.GET["id"], request.GET["rows"]
    with transaction.atomic(using="pg"):
        with connections["pg"].cursor() as cursor:
            cursor.execute(f"INSERT INTO {rows}.orders (id) VALUES (%s)", [order_id])
        result = find_order.delay(rows, order_id)
        if request.GET.get("fail"):
            transaction.set_rollback(True, using="pg")  # e.g. a later check failed
            return JsonResponse({"error": "refused"}, status=409)
    return JsonResponse({"task_id": result.id}, status=202)


urlpatterns = [path("orders/", place_order)]


@override_settings(ROOT_URLCONF=__name__)
def test_committed_views_run_once_and_find_their_rows_and_rolled_back_ones_enqueue_nothing(setup: Setup) -> None:
    client = Client()
    refused = client.get("/orders/", {"id": "refused", "rows": setup.rows, "fail": "1"})
    assert refused.status_code == 409
    assert setup.message_ids() == []
    worker = celeriac_worker(setup.broker_url, queues=("celery",),
                             DJANGO_SETTINGS_MODULE="tests.django.settings_postgres")
    try:
        task_ids = []
        for n in range(10):
            response = client.get("/orders/", {"id": f"o{n}", "rows": setup.rows})
            assert response.status_code == 202, response.content
            task_ids.append(response.json()["task_id"])
        for task_id in task_ids:
            assert setup.app.AsyncResult(task_id).get(timeout=60) == 1  # its row was there
    finally:
        assert worker.stop() == 0, worker.output()
    runs = sql(f"SELECT order_id, count(*) FROM {setup.rows}.runs GROUP BY order_id ORDER BY order_id")
    assert runs == [(f"o{n}", 1) for n in range(10)]  # each once; the refused one never
    assert sql(f"SELECT count(*) FROM {setup.rows}.orders WHERE id = 'refused'") == [(0,)]


async def _depths(app: Celery) -> dict[str, int]:
    return await (await app.clients()).broker.queue_depths()
