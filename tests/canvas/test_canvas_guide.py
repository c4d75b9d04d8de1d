"""The examples of Celery's canvas guide, and the article's canvas lines, on every store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from celeriac import Celery, GroupResult, Signature, chain, chord, group, signature
from celeriac.exceptions import ChordError

from ..unit.helpers import drain


@pytest.fixture
def app(backend_url: str) -> Celery:
    return Celery("proj", broker=backend_url)


@pytest.fixture
def tasks(app: Celery) -> Any:
    class T:
        @staticmethod
        @app.task(name="proj.add")
        def add(x: int, y: int, debug: bool = False) -> int:
            return x + y

        @staticmethod
        @app.task(name="proj.mul")
        async def mul(x: int, y: int) -> int:
            return x * y

        @staticmethod
        @app.task(name="proj.tsum")
        def tsum(numbers: list[int]) -> int:
            return sum(numbers)

        @staticmethod
        @app.task(name="proj.fail")
        def fail(*args: Any) -> None:
            raise ValueError("member broke")

    return T


async def settle(app: Celery, rounds: int = 6) -> None:
    """Follow-ups are sent by the worker, so drain until nothing new appears."""
    for _ in range(rounds):
        await drain(app)


async def test_signature_basics(app: Celery, tasks: Any) -> None:
    s = tasks.add.signature((2, 2), countdown=10)
    assert s.args == (2, 2) and s.kwargs == {} and s.options == {"countdown": 10}
    assert repr(tasks.add.s(2, 2)) == "proj.add(2, 2)"
    assert tasks.add.s(2, 2) == signature("proj.add", args=(2, 2))
    assert Signature.from_dict(json.loads(json.dumps(tasks.add.s(1, debug=True)))) == tasks.add.s(1, debug=True)
    partial = tasks.add.s(2)
    r1 = partial.delay(4)  # 4 + 2
    r2 = tasks.add.s(2, 2).delay(debug=True)
    r3 = tasks.add.signature((2, 2), countdown=10).apply_async(countdown=0)
    await settle(app, 1)
    assert (r1.get(timeout=5), r2.get(timeout=5), r3.get(timeout=5)) == (6, 4, 4)


async def test_callbacks_and_immutable(app: Celery, tasks: Any) -> None:
    first = tasks.add.apply_async((2, 2), link=tasks.add.s(8))
    second = tasks.add.apply_async((2, 2), link=tasks.add.si(1, 1))
    await settle(app)
    assert first.get(timeout=5) == 4
    [child] = first.children
    assert child.get(timeout=5) == 12
    assert second.children[0].get(timeout=5) == 2


async def test_groups(app: Celery, tasks: Any) -> None:
    res = group(tasks.add.s(2, 2), tasks.add.s(4, 4))()
    many = group(tasks.add.s(i, i) for i in range(10))()
    await settle(app, 1)
    assert isinstance(res, GroupResult)
    assert res.get(timeout=5) == [4, 8] and res.ready() and res.successful()
    assert res.completed_count() == 2
    assert many.get(timeout=5) == [i + i for i in range(10)]
    many.save()
    restored = GroupResult.restore(many.id, app=app)
    assert restored is not None and restored.get(timeout=5) == many.get()


async def test_chains(app: Celery, tasks: Any) -> None:
    res = chain(tasks.add.s(4, 4), tasks.mul.s(8), tasks.mul.s(10))()
    piped = (tasks.add.s(4, 4) | tasks.mul.s(8))()
    article = (tasks.add.s(2, 2) | tasks.add.s(4) | tasks.add.s(8))()
    await settle(app)
    assert res.get(timeout=5) == 640
    assert res.parent.get(timeout=5) == 64 and res.parent.parent.get(timeout=5) == 8
    assert piped.get(timeout=5) == 64
    assert article.get(timeout=5) == 16


async def test_chords(app: Celery, tasks: Any) -> None:
    res = chord(tasks.add.s(i, i) for i in range(100))(tasks.tsum.s())
    upgraded = (group(tasks.add.s(i, i) for i in range(10)) | tasks.tsum.s())()
    middle = (tasks.add.s(4, 4) | group(tasks.add.s(i) for i in range(10)) | tasks.tsum.s())()
    chained = (chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.tsum.s()) | tasks.mul.s(10))()
    of_chains = chord([tasks.add.s(1, 1) | tasks.mul.s(3), tasks.add.s(2, 2)], tasks.tsum.s())()
    await settle(app)
    assert res.get(timeout=5) == 9900
    assert upgraded.get(timeout=5) == 90
    assert middle.get(timeout=5) == 80 + 45
    assert chained.get(timeout=5) == 60
    assert of_chains.get(timeout=5) == 6 + 4


async def test_group_of_chains_and_chords(app: Celery, tasks: Any) -> None:
    res = group(tasks.add.s(1, 1) | tasks.mul.s(5), chord([tasks.add.s(1, 2)], tasks.tsum.s()))()
    await settle(app)
    assert res.get(timeout=5) == [10, 3]


async def test_map_starmap_chunks(app: Celery, tasks: Any) -> None:
    mapped = tasks.tsum.map([list(range(10)), list(range(100))]).delay()
    starmapped = tasks.add.starmap(zip(range(10), range(10), strict=True)).delay()
    chunked = tasks.add.chunks(zip(range(100), range(100), strict=True), 10)()
    await settle(app, 1)
    assert mapped.get(timeout=5) == [45, 4950]
    assert starmapped.get(timeout=5) == [i + i for i in range(10)]
    assert chunked.get(timeout=5) == [[2 * i for i in range(j, j + 10)] for j in range(0, 100, 10)]


async def test_failing_chain_link_fails_the_chain(app: Celery, tasks: Any) -> None:
    res = (tasks.add.s(1, 1) | tasks.fail.s() | tasks.add.s(1))()
    await settle(app)
    with pytest.raises(ValueError, match="member broke"):
        res.get(timeout=5)


async def test_failing_chord_member_fails_the_chord_and_calls_errback(app: Celery, tasks: Any) -> None:
    seen: list[Any] = []

    @app.task(name="proj.on_chord_error")
    def on_chord_error(request: Any, exc: BaseException, traceback: Any) -> None:
        seen.append(exc)

    body = tasks.tsum.s().on_error(on_chord_error.s())
    res = chord([tasks.add.s(1, 1), tasks.fail.s()], body)()
    await settle(app)
    with pytest.raises(ValueError, match="member broke"):  # get() follows the parents, as Celery's
        res.get(timeout=5)
    with pytest.raises(ChordError, match="member broke"):  # the body's own result
        app.AsyncResult(res.id).get(timeout=5)
    assert len(seen) == 1 and isinstance(seen[0], ChordError)


async def test_link_error_receives_request_and_exception(app: Celery, tasks: Any) -> None:
    seen: list[tuple[Any, ...]] = []

    @app.task(name="proj.log_error")
    def log_error(request: Any, exc: BaseException, traceback: str) -> None:
        seen.append((request.id, exc, traceback))

    @app.task(name="proj.old_style")
    def old_style(task_id: str) -> str:
        return task_id

    res = tasks.fail.s().on_error(log_error.s()).delay()
    old = tasks.fail.apply_async(link_error=old_style.s().set(task_id="errback-id"))
    await settle(app)
    assert seen[0][0] == res.id and isinstance(seen[0][1], ValueError) and "member broke" in seen[0][2]
    assert app.AsyncResult("errback-id").get(timeout=5) == old.id


async def test_options_carry_through(app: Celery, tasks: Any) -> None:
    res = group(tasks.add.s(1, 1), tasks.add.s(2, 2)).apply_async(queue="other", priority=5)
    depths = await (await app.clients()).broker.queue_depths()
    assert depths == {"other": 2}
    await settle(app)  # default queue only: nothing runs
    assert not res.ready()
    await drain(app, queues=["other"])
    assert res.get(timeout=5) == [2, 4]


async def test_canvas_serialises_to_json_and_back(app: Celery, tasks: Any) -> None:
    workflow = chain(tasks.add.s(1, 1), group(tasks.add.s(1), tasks.mul.s(2)), tasks.tsum.s())
    revived = Signature.from_dict(json.loads(json.dumps(workflow)), app=app)
    assert isinstance(revived, chain)
    res = revived()
    await settle(app)
    assert res.get(timeout=5) == 3 + 4
