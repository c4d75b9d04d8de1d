"""The ``django://`` result store against the shared result-store contract, plus its own rows.

The contract's test functions are imported as they are, so they cannot drift from the
suite every other store passes; this module gives them a ``store`` fixture that the
shared one cannot (it has no Django). Transactional tests: the store's ORM calls run on
another thread, which sees only committed rows.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator

import pytest

from celeriac.backends.django import DjangoResultStore
from celeriac.message import STARTED, SUCCESS
from celeriac.servers import create_store
from tests.contract.test_result_store import (  # noqa: F401  (collected here, with this module's store)
    rec,
    test_fetch_many,
    test_forget,
    test_group_completes_exactly_once_under_concurrency,
    test_group_member_counts_once,
    test_lower_token_is_refused,
    test_save_and_restore_group,
    test_store_and_fetch,
    test_unfinished_state_does_not_replace_finished_one,
    test_wait_ready_times_out_with_current_record,
    test_wait_ready_wakes_on_write,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def store() -> AsyncIterator[DjangoResultStore]:
    s = create_store("django://", 3600)
    assert isinstance(s, DjangoResultStore)
    await s.connect()
    yield s
    await s.close()


async def test_rows_carry_the_columns_the_admin_filters_on(store: DjangoResultStore) -> None:
    from celeriac.contrib.django.models import TaskResult

    record = rec("row", state=SUCCESS, token=3, result={"status": "active"})
    record.name, record.worker = "checks.tasks.check_registration_number", "w1@host"
    await store.store([record])
    row = await TaskResult.objects.aget(task_id="row")
    assert (row.state, row.task_name, row.fencing_token, row.worker) == (
        SUCCESS, "checks.tasks.check_registration_number", 3, "w1@host")
    assert row.date_done is not None and abs(row.date_done.timestamp() - time.time()) < 60
    assert row.expires is not None and row.expires > row.date_done
    assert row.record["result"] == {"status": "active"}


async def test_expired_results_are_not_returned(store: DjangoResultStore) -> None:
    from django.utils import timezone

    from celeriac.contrib.django.models import TaskResult

    await store.store([rec("old"), rec("new")])
    await TaskResult.objects.filter(task_id="old").aupdate(expires=timezone.now() - dt.timedelta(seconds=1))
    assert set(await store.fetch_many(["old", "new"])) == {"new"}
    assert await store.fetch("old") is None


async def test_a_database_alias_in_the_url(store: DjangoResultStore) -> None:
    other = create_store("django://default", None)
    await other.connect()
    await other.store([rec("via-alias", state=STARTED)])
    got = await store.fetch("via-alias")
    assert got is not None and got.state == STARTED
    assert isinstance(other, DjangoResultStore) and other.using == "default"


async def test_django_db_setting_selects_this_store() -> None:
    from celeriac import Celery

    app = Celery("t", broker="memory://django-db-setting", backend="django-db", set_as_current=False)
    try:
        assert isinstance(await app.result_store(), DjangoResultStore)
    finally:
        await app.close()
