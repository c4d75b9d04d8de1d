"""build_message's steps, tested directly: pure logic, no broker."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celeriac import Celery
from celeriac.exceptions import ConfigurationError
from celeriac.message import decode_envelope
from celeriac.publish import (
    MessageBuilder,
    build_message,
    eta_ms_of,
    expires_ms_of,
    merge_options,
    new_task_ids,
    priority_of,
    queue_of,
    to_epoch_ms,
)

NOW_MS = 1_700_000_000_000


def test_countdown_wins_over_eta_and_eta_takes_datetimes_or_seconds() -> None:
    assert eta_ms_of({"countdown": 1.5, "eta": 5}, NOW_MS) == NOW_MS + 1500
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert eta_ms_of({"eta": when}, NOW_MS) == int(when.timestamp() * 1000)
    assert eta_ms_of({"eta": 12.5}, NOW_MS) == 12_500
    assert eta_ms_of({}, NOW_MS) is None


def test_a_naive_datetime_means_utc() -> None:
    assert to_epoch_ms(dt.datetime(2030, 1, 1)) == to_epoch_ms(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))


def test_expires_takes_datetimes_timedeltas_and_seconds() -> None:
    assert expires_ms_of(None, NOW_MS) is None
    assert expires_ms_of(dt.timedelta(minutes=1), NOW_MS) == NOW_MS + 60_000
    assert expires_ms_of(30, NOW_MS) == NOW_MS + 30_000
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert expires_ms_of(when, NOW_MS) == int(when.timestamp() * 1000)


def test_priority_defaults_and_range() -> None:
    assert priority_of({}, 3, "t") == 3
    assert priority_of({"priority": "9"}, 0, "t") == 9
    with pytest.raises(ConfigurationError, match="priority 10 for task 't' is out of range"):
        priority_of({"priority": 10}, 0, "t")


def test_queue_from_queue_then_routing_key_then_default() -> None:
    assert queue_of({"queue": "a", "routing_key": "b"}, "celery") == "a"
    assert queue_of({"routing_key": "b"}, "celery") == "b"
    assert queue_of({"queue": {"name": "kombu-like"}}, "celery") == "kombu-like"
    assert queue_of({}, "celery") == "celery"


def test_options_merge_task_then_route_then_call_skipping_nones() -> None:
    app = Celery("proj", broker="memory://publish-merge", task_routes={"proj.*": {"queue": "routed"}})
    merged = merge_options(app.conf, "proj.t", [], {}, {"priority": None, "countdown": 2},
                           {"queue": "task-own", "priority": 4})
    assert merged == {"queue": "routed", "priority": 4, "countdown": 2}
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['bogus'\]"):
        merge_options(app.conf, "proj.t", [], {}, {"bogus": 1}, None)


def test_build_message_puts_it_together() -> None:
    app = Celery("proj", broker="memory://publish-build")
    message, result = build_message(app, "proj.t", (1, "x"), {"k": [2]},
                                    {"task_id": "fixed", "priority": 7, "queue": "q"})
    envelope = decode_envelope(message.body, frozenset({"json"}))
    assert (message.task_id, message.queue, message.priority, result.id) == ("fixed", "q", 7, "fixed")
    assert (envelope.args, envelope.kwargs, envelope.root_id) == ([1, "x"], {"k": [2]}, "fixed")
    with pytest.raises(ConfigurationError, match="serializer 'yaml' is unknown"):
        build_message(app, "proj.t", (), {}, {"serializer": "yaml"})
    with pytest.raises(ConfigurationError, match="needs 'pickle' in accept_content"):
        build_message(app, "proj.t", (), {}, {"serializer": "pickle"})


@given(st.integers(min_value=0, max_value=300))
def test_new_task_ids_are_distinct_version_4_uuids_as_uuid4_writes_them(count: int) -> None:
    ids = new_task_ids(count)
    assert len(set(ids)) == count
    for task_id in ids:
        parsed = uuid.UUID(task_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, task_id)


def test_a_group_of_plain_calls_shares_one_shape_but_a_router_function_sees_each_call() -> None:
    app = Celery("proj", broker="memory://publish-shapes", task_routes={"proj.*": {"queue": "routed"}})
    builder = MessageBuilder(app, "proj.t", {"group_id": "g", "countdown": 5})
    first, second = builder.shape([1], {}), builder.shape([2], {})
    assert first is second
    messages = [first.message([i], {}, task_id=f"id-{i}", group_index=i) for i in range(3)]
    envelopes = [decode_envelope(m.body, frozenset({"json"})) for m in messages]
    assert [(e.id, e.root_id, e.group_id, e.group_index, e.args) for e in envelopes] == [
        (f"id-{i}", f"id-{i}", "g", i, [i]) for i in range(3)]
    assert {m.queue for m in messages} == {"routed"} and len({m.eta_ms for m in messages}) == 1

    def by_argument(name: str, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]) -> str:
        return f"q{args[0] % 2}"

    app.conf.task_routes = [by_argument]
    builder = MessageBuilder(app, "proj.t", {"group_id": "g"})
    assert [builder.shape([i], {}).message([i], {}).queue for i in range(3)] == ["q0", "q1", "q0"]
