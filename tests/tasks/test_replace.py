"""``self.replace(sig)`` as in Celery's Tasks guide and its integration tasks, on every store."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, signals
from celeriac.exceptions import ImproperlyConfigured

from ..unit.helpers import drain


class ExpectedError(Exception):
    pass


async def settle(app: Celery, rounds: int = 8) -> None:
    """Follow-ups are sent by the worker: drain until nothing new appears."""
    for _ in range(rounds):
        await drain(app)


@pytest.fixture
def echo() -> list[Any]:
    return []


@pytest.fixture
def tasks(app: Celery, echo: list[Any]) -> Any:
    class T:
        @staticmethod
        @app.task(name="t.add")
        def add(x: int, y: int) -> int:
            return x + y

        @staticmethod
        @app.task(name="t.identity")
        def identity(x: Any) -> Any:
            return x

        @staticmethod
        @app.task(name="t.tsum")
        def tsum(numbers: list[int]) -> int:
            return sum(numbers)

        @staticmethod
        @app.task(name="t.echo")
        def record(message: Any) -> None:
            echo.append(message)

        @staticmethod
        @app.task(name="t.raise_error")
        def raise_error(*args: Any) -> None:
            raise ValueError("deliberate error")

        @staticmethod
        @app.task(name="t.fail")
        def fail(*args: Any) -> None:
            raise ExpectedError("Task expected to fail", *args)

        @staticmethod
        @app.task(name="t.add_replaced", bind=True)
        def add_replaced(self: Any, x: int, y: int) -> Any:
            raise self.replace(T.add.s(x, y))

        @staticmethod
        @app.task(name="t.fail_replaced", bind=True)
        def fail_replaced(self: Any, *args: Any) -> Any:
            raise self.replace(T.fail.si(*args))

        @staticmethod
        @app.task(name="t.replace_with_chain", bind=True)
        def replace_with_chain(self: Any, *args: Any, link_msg: Any = None) -> Any:
            c = chain(T.identity.s(*args), T.identity.s())
            link_sig = T.record.s()
            if link_msg is not None:
                link_sig = T.record.si(link_msg)
            c.link(link_sig)
            return self.replace(c)

        @staticmethod
        @app.task(name="t.replace_with_chain_which_raises", bind=True)
        def replace_with_chain_which_raises(self: Any, *args: Any, link_msg: Any = None) -> Any:
            c = chain(T.identity.s(*args), T.raise_error.s())
            c.link_error(T.record.si(link_msg))
            return self.replace(c)

        @staticmethod
        @app.task(name="t.replace_failing_first", bind=True)
        def replace_failing_first(self: Any) -> Any:
            return self.replace(chain(T.raise_error.s(), T.identity.s()))

        @staticmethod
        @app.task(name="t.replace_with_empty_chain", bind=True)
        def replace_with_empty_chain(self: Any, *_: Any) -> Any:
            return self.replace(chain())

        @staticmethod
        @app.task(name="t.add_to_all", bind=True)
        def add_to_all(self: Any, nums: list[int], val: int) -> Any:
            raise self.replace(group(*[T.add.s(num, val) for num in nums]))

        @staticmethod
        @app.task(name="t.replace_in_chord_option", bind=True)
        def replace_in_chord_option(self: Any) -> Any:
            sig = T.add.s(1, 1)
            sig.set(chord={"group_id": "g"})
            return self.replace(sig)

        @staticmethod
        @app.task(name="t.second_order_replace1", bind=True)
        def second_order_replace1(self: Any, state: bool = False) -> Any:
            if not state:
                echo.append("In A")
                raise self.replace(chain(T.second_order_replace2.s(), T.second_order_replace1.si(state=True)))
            echo.append("Out A")

        @staticmethod
        @app.task(name="t.second_order_replace2", bind=True)
        def second_order_replace2(self: Any, state: bool = False) -> Any:
            if not state:
                echo.append("In B")
                raise self.replace(chain(T.record.s("In/Out C"), T.second_order_replace2.si(state=True)))
            echo.append("Out B")

    return T


async def test_replace_with_a_task(app: Celery, tasks: Any) -> None:
    nesting: list[tuple[str, int]] = []

    def received(sender: Any, request: Any, **_: Any) -> None:
        nesting.append((request.task, request.replaced_task_nesting))

    signals.task_received.connect(received)
    try:
        result = tasks.add_replaced.delay(2, 3)
        await settle(app)
    finally:
        signals.task_received.disconnect(received)
    assert result.get(timeout=5) == 5 and result.state == "SUCCESS"
    assert ("t.add_replaced", 0) in nesting and ("t.add", 1) in nesting


async def test_replace_with_a_chain_keeps_its_link(app: Celery, tasks: Any, echo: list[Any]) -> None:
    result = tasks.replace_with_chain.delay(42)
    linked = tasks.replace_with_chain.delay(7, link_msg="Hello, world!")
    await settle(app)
    assert result.get(timeout=5) == 42 and linked.get(timeout=5) == 7
    assert sorted(echo, key=str) == [42, "Hello, world!"]


async def test_replace_with_a_chain_that_raises(app: Celery, tasks: Any, echo: list[Any]) -> None:
    result = tasks.replace_with_chain_which_raises.delay(1, link_msg="failed")
    early = tasks.replace_failing_first.delay()
    await settle(app)
    with pytest.raises(ValueError, match="deliberate error"):
        result.get(timeout=5)
    with pytest.raises(ValueError, match="deliberate error"):  # the last step never runs: no hang
        early.get(timeout=5)
    assert "failed" in echo


async def test_replace_with_a_failing_task(app: Celery, tasks: Any) -> None:
    result = tasks.fail_replaced.delay("test")
    await settle(app)
    with pytest.raises(ExpectedError) as raised:
        result.get(timeout=5)
    assert raised.value.args == ("Task expected to fail", "test")


async def test_replace_with_a_group(app: Celery, tasks: Any) -> None:
    result = tasks.add_to_all.delay([1, 2, 3], 10)
    await settle(app)
    assert result.get(timeout=5) == [11, 12, 13]


async def test_replaced_step_in_a_chain_and_in_a_chord(app: Celery, tasks: Any) -> None:
    in_chain = chain(tasks.add_replaced.s(1, 2), tasks.add.s(10), tasks.add.s(100)).delay()
    in_chord = chord([tasks.add_replaced.s(1, 1), tasks.add.s(2, 2), tasks.add_to_all.s([1], 1)],
                     tasks.identity.s()).delay()
    await settle(app)
    assert in_chain.get(timeout=5) == 113
    assert in_chord.get(timeout=5) == [2, 4, [2]]


async def test_replaced_chord_member_that_fails_fails_the_chord(app: Celery, tasks: Any) -> None:
    result = chord([tasks.fail_replaced.s(), tasks.add.s(1, 1)], tasks.tsum.s()).delay()
    await settle(app)
    with pytest.raises(Exception):  # noqa: B017  # the chord's failure, whichever form it takes
        result.get(timeout=5)


async def test_nested_replacements_run_in_order(app: Celery, tasks: Any, echo: list[Any]) -> None:
    nesting: list[int] = []

    def received(sender: Any, request: Any, **_: Any) -> None:
        nesting.append(request.replaced_task_nesting)

    signals.task_received.connect(received)
    expected = ["In A", "In B", "In/Out C", "Out B", "Out A"]
    try:
        result = tasks.second_order_replace1.si().delay()
        await settle(app, rounds=12)
        assert result.get(timeout=5) is None and echo == expected
        echo.clear()
        chained = (tasks.second_order_replace1.si() | tasks.add.si(4, 2)).delay()
        await settle(app, rounds=12)
        assert chained.get(timeout=5) == 6 and echo == expected
    finally:
        signals.task_received.disconnect(received)
    assert max(nesting) == 2 and min(nesting) == 0


async def test_replace_refuses_what_celery_refuses(app: Celery, tasks: Any) -> None:
    empty = tasks.replace_with_empty_chain.delay()
    in_chord = tasks.replace_in_chord_option.delay()
    await settle(app)
    with pytest.raises(ImproperlyConfigured, match="empty chain"):
        empty.get(timeout=5)
    with pytest.raises(ImproperlyConfigured, match="must not be part of a chord"):
        in_chord.get(timeout=5)


def test_replace_in_eager_mode(eager_app: Celery) -> None:
    @eager_app.task
    def add(x: int, y: int) -> int:
        return x + y

    @eager_app.task(bind=True)
    def add_replaced(self: Any, x: int, y: int) -> Any:
        return self.replace(add.s(x, y))

    assert add_replaced.delay(4, 4).get() == 8
