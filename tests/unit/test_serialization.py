"""The wire form of arguments and results: pure logic, no broker (issue 10, cases 1 and 8)."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celeriac import Celery
from celeriac.exceptions import SerializationError
from celeriac.message import Envelope, decode_envelope, encode_envelope
from celeriac.serialization import MAX_DEPTH, TAG, check_args, from_wire, safe_text, to_wire

JSON_ONLY = frozenset({"json"})


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def round_trip(args: list[Any]) -> list[Any]:
    envelope = Envelope(id="t-1", task="proj.echo")
    envelope.args, envelope.kwargs = check_args("proj.echo", args, {})
    return decode_envelope(encode_envelope(envelope), JSON_ONLY).args


@pytest.mark.parametrize("user_dict", [
    {TAG: "datetime", "v": "user input"},  # the form post, passed through
    {TAG: "datetime", "v": "2024-01-02T03:04:05"},  # would have become a datetime
    {TAG: "nope"},
    {TAG: {TAG: "bytes", "v": "!!"}, "v": 1, "other": 2},
    {TAG: "dict", "v": {"a": 1}},  # shaped like the escape itself
])
def test_a_dict_shaped_like_the_tag_arrives_as_the_same_dict(user_dict: dict[str, Any]) -> None:
    assert round_trip([user_dict, [user_dict]]) == [user_dict, [user_dict]]


def test_nan_and_infinities_round_trip() -> None:
    got = round_trip([math.nan, math.inf, -math.inf, 1.5])
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf, 1.5]


@pytest.mark.parametrize("raw_arg", [
    b'{"__celeriac__":"datetime","v":"user input"}',
    b'{"__celeriac__":"bytes","v":"!!"}',
    b'{"__celeriac__":"float","v":"1.0"}',
    b'{"__celeriac__":"no-such-kind","v":1}',
    b'{"__celeriac__":"uuid","v":"x","extra":1}',
    b'{"__celeriac__":"timedelta","v":"x"}',
    b'{"__celeriac__":"decimal","v":[]}',
    b'{"__celeriac__":7,"v":1}',
])
def test_a_malformed_tagged_value_is_a_serialization_error(raw_arg: bytes) -> None:
    raw = b'{"id":"t-1","task":"proj.echo","args":[' + raw_arg + b"]}"
    with pytest.raises(SerializationError):
        decode_envelope(raw, JSON_ONLY)


@pytest.mark.parametrize("raw", [
    b"", b"\xff\xfe\x00", b"[" * 5000, b"null", b'{"id":1,"task":"x"}',
    b'{"id":"t-1","task":"proj.echo","args":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"id":"t-1","task":"proj.echo","args":["\\udc80"]}',
    b'{"id":"t-1","task":"proj.echo","serializer":"pickle"}',
    b'{"id":"t-1","task":"proj.echo","v":99}',
])
def test_any_undecodable_message_is_a_serialization_error(raw: bytes) -> None:
    with pytest.raises(SerializationError):
        decode_envelope(raw, JSON_ONLY)


@given(st.binary(max_size=200))
def test_decoding_random_bytes_raises_only_serialization_error(raw: bytes) -> None:
    with contextlib.suppress(SerializationError):
        decode_envelope(raw, JSON_ONLY)


def test_delay_refuses_a_lone_surrogate_naming_the_argument(tmp_path: Any) -> None:
    app = Celery("proj", broker="memory://serialization-surrogate")

    @app.task
    def echo(*args: Any, **kwargs: Any) -> Any:
        return args

    with pytest.raises(SerializationError, match=r"argument 1 of .*echo.*not valid Unicode"):
        echo.delay("fine", "bad \udcff name")
    with pytest.raises(SerializationError, match=r"keyword argument 'path' of .*echo"):
        echo.delay(path=["ok", "bad \udcff"])
    with pytest.raises(SerializationError, match=r"name of keyword argument 0"):
        echo.apply_async(kwargs={"\udcff": 1})


def test_delay_refuses_deep_nesting_naming_the_argument() -> None:
    app = Celery("proj", broker="memory://serialization-deep")

    @app.task
    def echo(value: Any) -> Any:
        return value

    with pytest.raises(SerializationError, match=r"argument 0 of .*echo.*nested more than"):
        echo.delay(nested(5000))
    assert round_trip([nested(MAX_DEPTH - 1)]) == [nested(MAX_DEPTH - 1)]


def test_enums_and_subclasses_travel_as_plain_values() -> None:
    import enum

    class Color(enum.StrEnum):
        RED = "red"

    class Count(enum.IntEnum):
        ONE = 1

    class Name(str):
        def __str__(self) -> str:
            return "not me"

    assert to_wire([Color.RED, Count.ONE, Name("abc")]) == ["red", 1, "abc"]
    assert type(to_wire(Name("abc"))) is str


def test_safe_text_escapes_only_lone_surrogates() -> None:
    assert safe_text("plain") == "plain"
    assert safe_text("한국어") == "한국어"
    assert safe_text("bad \udcff") == "bad \\udcff"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.datetimes(timezones=st.just(dt.UTC)) | st.binary(max_size=20) | st.uuids()
    | st.dictionaries(st.just(TAG), st.text(max_size=10) | st.integers(), max_size=1),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from([TAG, "v", "a", "dict"]) | st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(json_values)
def test_every_accepted_value_comes_back_as_itself(value: Any) -> None:
    try:
        wire = to_wire(value)
    except SerializationError:
        return
    assert same(from_wire(wire), value)
    try:
        got = round_trip([value])
    except SerializationError as exc:  # only a string JSON cannot hold, named
        assert "not valid Unicode" in str(exc)
        return
    assert same(got[0], value)


def test_a_keyword_argument_named_like_the_tag_arrives_as_sent() -> None:
    envelope = Envelope(id="t-1", task="proj.echo")
    envelope.args, envelope.kwargs = check_args("proj.echo", [], {TAG: None, "other": 1})
    assert decode_envelope(encode_envelope(envelope), JSON_ONLY).kwargs == {TAG: None, "other": 1}


@pytest.mark.parametrize("delta", [dt.timedelta(days=99421, microseconds=1), dt.timedelta(microseconds=-1),
                                   dt.timedelta(days=-999_999_999), dt.timedelta(days=999_999_999, seconds=86399)])
def test_timedeltas_keep_every_microsecond(delta: dt.timedelta) -> None:
    assert round_trip([delta]) == [delta]


def test_a_timedelta_sent_as_float_seconds_by_an_older_producer_still_decodes() -> None:
    assert from_wire({TAG: "timedelta", "v": 90.5}) == dt.timedelta(seconds=90.5)
