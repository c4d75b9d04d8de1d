"""Eager canvas: ``apply()`` of chains, groups and chords, and ``task_always_eager`` /
``task_eager_propagates`` covering them, as in Celery."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from celeriac import Celery, GroupResult, chain, chord, group
from celeriac.exceptions import ChordError, TimeoutError
from celeriac.result import _set_task_join_will_block, allow_join_result, denied_join_result


class Boom(Exception):
    pass


@pytest.fixture
def app() -> Celery:
    return Celery("eager", broker=f"memory://{uuid.uuid4().hex}")


@pytest.fixture
def t(app: Celery) -> Any:
    calls: list[tuple[str, Any]] = []

    class T:
        seen = calls

        @staticmethod
        @app.task(name="eager.add")
        def add(x: Any, y: Any) -> Any:
            return x + y

        @staticmethod
        @app.task(name="eager.tsum")
        async def tsum(values: list[int]) -> int:
            return sum(values)

        @staticmethod
        @app.task(name="eager.fail")
        def fail(*args: Any) -> None:
            raise Boom("deliberate")

        @staticmethod
        @app.task(name="eager.record")
        def record(*args: Any, key: str = "record") -> None:
            calls.append((key, args))

        @staticmethod
        @app.task(name="eager.new_style")
        def new_style(request: Any, exc: BaseException, traceback: Any) -> None:
            calls.append(("new", (request.id, type(exc).__name__)))

        @staticmethod
        @app.task(name="eager.old_style")
        def old_style(task_id: str) -> None:
            calls.append(("old", task_id))

    return T


def test_apply_of_chain_group_and_chord(app: Celery, t: Any) -> None:
    res = chain(t.add.s(4, 4), t.add.s(8), t.add.s(16)).apply()
    assert res.get() == 32 and res.parent.get() == 16 and res.parent.parent.get() == 8
    g = group(t.add.s(1, 1), group(t.add.s(2, 2), t.add.s(3, 3))).apply()
    assert isinstance(g, GroupResult) and g.get() == [2, 4, 6] and g.ready() and g.completed_count() == 3
    c = chord([t.add.s(i, i) for i in range(5)], t.tsum.s()).apply()
    assert c.get() == 20 and isinstance(c.parent, GroupResult)
    mixed = (t.add.s(1, 1) | group(t.add.s(1), t.add.s(2)) | t.tsum.s() | group(t.add.s(1), t.add.s(2))).apply()
    assert mixed.get() == [8, 9]
    with_args = chain(t.add.s(1), t.add.s(2)).apply((10,))
    assert with_args.get() == 13


def test_always_eager_covers_canvas(app: Celery, t: Any) -> None:
    app.conf.task_always_eager = True
    assert chain(t.add.s(1, 1), t.add.s(2)).delay().get() == 4
    assert group(t.add.s(1, 1), t.add.s(2, 2))().get() == [2, 4]
    assert chord([t.add.s(1, 1), t.add.s(2, 2)])(t.tsum.s()).get() == 6
    assert (group(t.add.s(1, 1), t.add.s(2, 2)) | t.tsum.s()).apply_async().get() == 6
    assert ~(t.add.s(2, 2) | t.add.s(3)) == 7

    @app.task(name="eager.chain_inside")
    def chain_inside(x: int, y: int) -> Any:
        return (t.add.s(x, x) | t.add.s(y)).apply_async().get()

    assert chain_inside.apply_async(args=(4, 8), throw=True).get() == 16


def test_a_failing_step_fails_the_eager_chain(app: Celery, t: Any) -> None:
    res = chain(t.add.s(1, 1), t.fail.s(), t.record.s(key="never")).apply()
    with pytest.raises(Boom):
        res.get()
    assert t.seen == []  # the step after the failure never ran
    app.conf.task_eager_propagates = True
    with pytest.raises(Boom):
        chain(t.add.s(1, 1), t.fail.s(), t.add.s(1)).apply()
    with pytest.raises(Boom):
        group(t.add.s(1, 1), t.fail.s()).apply()


def test_eager_chord_failure_and_errbacks(app: Celery, t: Any) -> None:
    c = chord([t.add.s(1, 1), t.fail.s()], t.tsum.s())
    c.link_error(t.new_style.s())
    c.link_error(t.old_style.s())
    body_id = c.body.freeze().id
    res = c.apply()
    with pytest.raises(Boom):  # the original error, through the header
        res.get()
    assert isinstance(res.result, ChordError) and res.id == body_id
    assert ("new", (body_id, "ChordError")) in t.seen and ("old", body_id) in t.seen
    assert len(t.seen) == 2


def test_eager_links_and_errbacks_of_a_task(app: Celery, t: Any) -> None:
    app.conf.task_always_eager = True
    failed = t.fail.apply(args=("x",), link_error=[t.new_style.s(), t.old_style.s(), t.record.si(key="imm")])
    assert isinstance(failed.get(propagate=False), Boom)
    assert ("new", (failed.id, "Boom")) in t.seen and ("old", failed.id) in t.seen and ("imm", ()) in t.seen
    ok = t.add.apply((1, 2), link=t.record.s(key="done"))
    assert ok.get() == 3 and ("done", (3,)) in t.seen
    g = group(t.add.s(1, 1), t.fail.s(), t.fail.s())
    g.link_error(t.record.si(key="group-error"))
    g.link(t.record.si(key="group-done"))
    g.apply()
    assert sum(1 for k, _ in t.seen if k == "group-error") == 2
    assert sum(1 for k, _ in t.seen if k == "group-done") == 1


def test_join_inside_a_task_can_be_refused_and_allowed(app: Celery, t: Any) -> None:
    pending = app.AsyncResult(str(uuid.uuid4()))
    _set_task_join_will_block(True)  # as in a worker process that must not block
    try:
        with pytest.raises(RuntimeError, match=r"Never call result\.get"):
            pending.get(timeout=0.01)
        with allow_join_result(), pytest.raises(TimeoutError):
            pending.get(timeout=0.01)
    finally:
        _set_task_join_will_block(False)
    with denied_join_result(), pytest.raises(RuntimeError):
        GroupResult("g", [pending]).get(timeout=0.01)
