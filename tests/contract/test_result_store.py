"""The result-store contract, for every implementation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from celeriac.message import FAILURE, STARTED, SUCCESS, ResultRecord
from celeriac.servers import ResultStore, create_store


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[ResultStore]:
    s = create_store(backend_url, 3600)
    await s.connect()
    yield s
    await s.close()


def rec(task_id: str, state: str = SUCCESS, token: int = 1, result: object = None) -> ResultRecord:
    return ResultRecord(task_id=task_id, state=state, result=result, fencing_token=token,
                        date_done_ms=int(time.time() * 1000))


async def test_store_and_fetch(store: ResultStore) -> None:
    assert await store.store([rec("a", result=[1, "x"])]) == []
    got = await store.fetch("a")
    assert got is not None and got.state == SUCCESS and got.result == [1, "x"]
    assert await store.fetch("missing") is None


async def test_fetch_many(store: ResultStore) -> None:
    await store.store([rec("a"), rec("b")])
    assert set(await store.fetch_many(["a", "b", "c"])) == {"a", "b"}


async def test_lower_token_is_refused(store: ResultStore) -> None:
    await store.store([rec("a", token=2, result="new holder")])
    assert await store.store([rec("a", token=1, result="stale")]) == ["a"]
    got = await store.fetch("a")
    assert got is not None and got.result == "new holder"
    assert await store.store([rec("a", token=3, result="newer")]) == []


async def test_unfinished_state_does_not_replace_finished_one(store: ResultStore) -> None:
    await store.store([rec("a", state=SUCCESS, token=1, result=5)])
    assert await store.store([rec("a", state=STARTED, token=1)]) == ["a"]
    got = await store.fetch("a")
    assert got is not None and got.state == SUCCESS
    assert await store.store([rec("a", state=STARTED, token=2)]) == []  # a new delivery started


async def test_wait_ready_wakes_on_write(store: ResultStore) -> None:
    await store.store([rec("w", state=STARTED)])
    waiting = asyncio.create_task(store.wait_ready("w", 5.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await store.store([rec("w", state=FAILURE)])
    got = await waiting
    assert got is not None and got.state == FAILURE


async def test_wait_ready_times_out_with_current_record(store: ResultStore) -> None:
    await store.store([rec("s", state=STARTED)])
    got = await store.wait_ready("s", 0.2)
    assert got is not None and got.state == STARTED
    assert await store.wait_ready("nothing", 0.1) is None


async def test_forget(store: ResultStore) -> None:
    await store.store([rec("f")])
    await store.forget("f")
    assert await store.fetch("f") is None


async def test_group_member_counts_once(store: ResultStore) -> None:
    progress = await store.record_group_member("g", "m1", 3, rec("m1"))
    assert (progress.done_count, progress.is_newly_complete) == (1, False)
    progress = await store.record_group_member("g", "m1", 3, rec("m1"))  # redelivered: runs twice
    assert progress.done_count == 1
    await store.record_group_member("g", "m2", 3, rec("m2"))
    progress = await store.record_group_member("g", "m3", 3, rec("m3"))
    assert progress.done_count == 3 and progress.is_newly_complete
    again = await store.record_group_member("g", "m3", 3, rec("m3"))
    assert again.done_count == 3 and not again.is_newly_complete
    assert (await store.fetch("m2")) is not None


async def test_group_completes_exactly_once_under_concurrency(store: ResultStore) -> None:
    members = [f"m{i}" for i in range(50)]
    calls = [store.record_group_member("g2", m, 50, rec(m)) for m in members + members[:10]]
    results = await asyncio.gather(*calls)
    assert sum(p.is_newly_complete for p in results) == 1


async def test_save_and_restore_group(store: ResultStore) -> None:
    await store.save_group("g", ["a", "b"])
    assert await store.restore_group("g") == ["a", "b"]
    assert await store.restore_group("nope") is None
