"""Issue 10: no single message, argument or result may stall, wedge or kill a worker.

Property-based, on memory, SQLite and Redis, against one long-lived worker per test and
broker (see harness.py). After every example: each message is in a final state (SUCCESS,
FAILURE or REVOKED, or dead-lettered with a reason), a later canary task succeeds, and
the worker is alive and answers. A value that ``delay()`` refuses must be refused with a
``SerializationError`` naming the argument; any other exception from ``delay()`` is let
through unwrapped, so hypothesis reports each kind as its own bug.

``make fuzz`` runs the same properties with fifty times the examples.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from celeriac.exceptions import SerializationError
from celeriac.publish import build_message
from celeriac.servers.contracts import OutgoingMessage

from .conftest import budget
from .harness import (
    ABOOM,
    AECHO,
    AGIVE,
    ATHROW,
    BOOM,
    ECHO,
    GIVE,
    STASH,
    THROW,
    FuzzError,
    Harness,
)
from .roundtrip import difference
from .strategies import (
    Built,
    any_value,
    base_exceptions,
    call_args,
    call_kwargs,
    exceptions,
    heft,
    id_prefixes,
    materialize,
    messages,
    raw_messages,
)

pytestmark = pytest.mark.timeout(900)  # a broken worker makes each failing example wait; shrinking adds up

MESSAGE_CHECKED_UP_TO = 10_000  # longer messages may be stored shortened


def refused_properly(exc: SerializationError) -> None:
    assert "argument" in str(exc), f"SerializationError does not name the argument: {exc}"


def clean_text(value: Any) -> bool:
    """A str that UTF-8 can hold and that is short enough to be stored whole."""
    if type(value) is not str or len(value) > MESSAGE_CHECKED_UP_TO:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def producer_accepts(h: Harness, value: Any) -> bool:
    """Whether ``delay(value)`` would send it (built exactly as delay() does, not published)."""
    assert h.app is not None
    try:
        build_message(h.app, ECHO, [value], {}, {})
    except SerializationError:
        return False
    except Exception:  # reported by test_arguments_round_trip; here it counts as refused
        return False
    return True


@budget(100)
@given(args=call_args, kwargs=call_kwargs, name=st.sampled_from([ECHO, AECHO]))
def test_arguments_round_trip(harness: Harness, args: list[Any], kwargs: dict[str, Any], name: str) -> None:
    """Any arguments: refused at delay() naming the argument, or the task gets them back unchanged."""
    size = heft([args, kwargs])
    args, kwargs = materialize(args), materialize(kwargs)
    with harness.example() as h:
        try:
            result = h.task(name).delay(*args, **kwargs)
        except SerializationError as exc:
            event("refused at delay()")
            refused_properly(exc)
            h.check_canary_and_health()
            return
        final = h.wait_final([result.id], heft=size)
        event(f"sent, ended {final.outcome}")
        if final.state == "FAILURE" and "levels deep" in str(final.value):
            # echo returns {"args": [...]}: two levels deeper than what delay() accepted,
            # so a value at the depth limit fails as a return value, saying so.
            h.check_canary_and_health([result.id])
            return
        assert final.state == "SUCCESS", f"echo ended {final.state}: {final.value!r} {final.reason or ''}"
        problem = difference({"args": args, "kwargs": kwargs}, final.value)
        assert problem is None, f"arguments did not come back unchanged: {problem}"
        h.check_canary_and_health([result.id])


@budget(50)
@given(value=any_value, name=st.sampled_from([GIVE, AGIVE]))
def test_return_values(harness: Harness, value: Any, name: str) -> None:
    """Any return value: stored and read back unchanged if it could be an argument; else
    stored in a safe form or a FAILURE that says why. Never a stuck message."""
    size = heft(value)
    value = materialize(value)
    token = uuid.uuid4().hex
    with harness.example() as h:
        sendable = producer_accepts(h, value)
        STASH[token] = value
        try:
            result = h.task(name).delay(token)
            final = h.wait_final([result.id], heft=size)
        finally:
            STASH.pop(token, None)
        event(f"{'sendable' if sendable else 'not sendable'}, ended {final.outcome}")
        assert final.state in ("SUCCESS", "FAILURE"), f"ended {final.state} {final.reason or ''}"
        if sendable:
            assert final.state == "SUCCESS", f"a value delay() accepts failed as a return value: {final.value!r}"
            problem = difference(value, final.value)
            assert problem is None, f"the return value did not come back unchanged: {problem}"
        elif final.state == "FAILURE":
            assert str(final.value).strip(), "the FAILURE does not say why the value could not be stored"
        h.check_canary_and_health([result.id])


@budget(50)
@given(exc=exceptions, name=st.sampled_from([THROW, ATHROW]))
def test_exceptions_raised(harness: Harness, exc: Built, name: str) -> None:
    """Any exception, with any message: the task ends FAILURE, and a plain message survives."""
    raised = exc.make()
    token = uuid.uuid4().hex
    with harness.example() as h:
        STASH[token] = raised
        try:
            result = h.task(name).delay(token)
            final = h.wait_final([result.id], heft=exc.size)
        finally:
            STASH.pop(token, None)
        event(f"{exc.label.split('(')[0]}: {final.outcome}")
        assert final.state == "FAILURE", f"raising {exc!r} ended {final.state} with {final.value!r}"
        if type(raised) is FuzzError and len(raised.args) == 1 and clean_text(raised.args[0]):
            assert isinstance(final.value, FuzzError), f"re-raised as {type(final.value).__name__}"
            assert str(final.value) == raised.args[0], f"the message changed: {str(final.value)[:200]!r}"
        h.check_canary_and_health([result.id])


@budget(40)
@given(message=messages, name=st.sampled_from([BOOM, ABOOM]))
def test_exception_messages_sent(harness: Harness, message: Any, name: str) -> None:
    """A message sent as an argument and raised by the task: FAILURE with that message."""
    size = heft(message)
    message = materialize(message)
    with harness.example() as h:
        try:
            result = h.task(name).delay(message)
        except SerializationError as exc:
            event("refused at delay()")
            refused_properly(exc)
            h.check_canary_and_health()
            return
        final = h.wait_final([result.id], heft=size)
        event(f"sent, ended {final.outcome}")
        assert final.state == "FAILURE", f"boom ended {final.state} with {final.value!r}"
        assert not final.dead_lettered, f"a message delay() sent was dead-lettered: {final.reason}"
        assert isinstance(final.value, FuzzError), f"re-raised as {type(final.value).__name__}: {final.value}"
        if clean_text(message):
            assert str(final.value) == message, f"the message changed: {str(final.value)[:200]!r}"
        h.check_canary_and_health([result.id])


@budget(25)
@given(exc=base_exceptions, name=st.sampled_from([THROW, ATHROW]))
def test_base_exceptions_fail_the_task_not_the_worker(harness: Harness, exc: Built, name: str) -> None:
    """SystemExit, KeyboardInterrupt, GeneratorExit, CancelledError, custom BaseExceptions."""
    token = uuid.uuid4().hex
    with harness.example() as h:
        STASH[token] = exc.make()
        try:
            result = h.task(name).delay(token)
            final = h.wait_final([result.id])
        finally:
            STASH.pop(token, None)
        event(f"{exc.label.split('(')[0]}: {final.outcome}")
        assert final.state == "FAILURE", f"raising {exc!r} ended {final.state} with {final.value!r}"
        h.check_canary_and_health([result.id])


@budget(80)
@given(
    raws=st.lists(raw_messages, min_size=1, max_size=3),
    prefixes=st.lists(id_prefixes, min_size=3, max_size=3),
    priorities=st.lists(st.integers(0, 9), min_size=3, max_size=3),
    mate_at=st.integers(0, 3),
)
def test_raw_envelopes(harness: Harness, raws: list[Any], prefixes: list[str], priorities: list[int],
                       mate_at: int) -> None:
    """Anything written straight into the queue ends dead-lettered with a reason or in a final
    state, alone: a good message published in the same batch still succeeds."""
    with harness.example() as h:
        assert h.app is not None
        ids = [f"{prefixes[i]}{uuid.uuid4().hex}" for i in range(len(raws))]
        outgoing = [OutgoingMessage(task_id, "celery", raw.body(task_id), priorities[i])
                    for i, (task_id, raw) in enumerate(zip(ids, raws, strict=True))]
        mate_message, mate = build_message(h.app, ECHO, ["batch-mate"], {}, {})
        outgoing.insert(min(mate_at, len(outgoing)), mate_message)
        h.publish_raw(outgoing)
        for task_id, raw in zip(ids, raws, strict=True):
            event(f"{raw.kind}: {h.wait_final(raw.answer_ids(task_id)).outcome}")
        final = h.wait_final([mate.id], dead_ok=False)
        assert final.state == "SUCCESS", f"a good message published with the raw ones ended {final.state}"
        assert final.value == {"args": ["batch-mate"], "kwargs": {}}
        h.check_canary_and_health([*ids, mate.id])
