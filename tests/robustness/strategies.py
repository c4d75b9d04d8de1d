"""What the properties draw: every value Python and JSON can hold, and raw envelopes.

Values too big to print (a 100,000-deep list, a megabyte of text, a list that contains
itself) are drawn as :class:`Built`, which prints as a short label; the tests call
:func:`materialize` to get the real value.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import decimal
import enum
import json
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from . import harness
from .harness import TASK_NAMES

TAG = "__celeriac__"
KNOWN_TAGS = ("datetime", "date", "time", "timedelta", "uuid", "decimal", "bytes")
ENVELOPE_FIELDS = (
    "v", "id", "task", "args", "kwargs", "queue", "priority", "eta_ms", "expires_ms", "retries",
    "root_id", "parent_id", "group_id", "group_index", "ignore_result", "headers", "link",
    "link_error", "chord", "chain", "time_limit", "soft_time_limit", "serializer", "payload",
    "shadow", "sent_at_ms",
)


def weighted(*choices: tuple[st.SearchStrategy[Any], int]) -> st.SearchStrategy[Any]:
    """Draw from each strategy with its weight (shrinking towards the first)."""
    pool = [strategy for strategy, weight in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


# --- opaque big values ------------------------------------------------------------------


class Built:
    """A value built from a short recipe; prints as the recipe, not as the value."""

    def __init__(self, label: str, make: Callable[[], Any], size: int = 0) -> None:
        self.label = label
        self.make = make
        self.size = size  # about how many characters it takes as JSON, when that is large

    def __repr__(self) -> str:
        return self.label


def materialize(value: Any) -> Any:
    """Replace every :class:`Built` inside plain lists, tuples and dicts by its value."""
    if isinstance(value, Built):
        return value.make()
    kind = type(value)
    if kind is list:
        return [materialize(v) for v in value]
    if kind is tuple:
        return tuple(materialize(v) for v in value)
    if kind is dict:
        return {k: materialize(v) for k, v in value.items()}
    return value


def heft(value: Any) -> int:
    """About how many characters the large values inside ``value`` take (0 for small ones)."""
    if isinstance(value, Built):
        return value.size
    if type(value) in (list, tuple):
        return sum(heft(v) for v in value)
    if type(value) is dict:
        return sum(heft(v) for v in value.values())
    return 0


def nested(depth: int, kind: str, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if kind == "list" or (kind == "mixed" and i % 2) else {"k": value}
    return value


def self_containing(kind: str) -> Any:
    if kind == "list":
        items: list[Any] = [1]
        items.append(items)
        return items
    mapping: dict[str, Any] = {"a": 1}
    mapping["self"] = mapping
    if kind == "deep-dict":
        return {"outer": [mapping]}
    return mapping


DEPTHS = st.one_of(
    st.integers(min_value=1, max_value=3000),
    st.sampled_from([100, 254, 255, 256, 500, 512, 900, 999, 1000, 1001, 1024, 2000, 5000, 10_000, 100_000]),
)


@st.composite
def deep_values(draw: st.DrawFn) -> Built:
    depth = draw(DEPTHS)
    kind = draw(st.sampled_from(["list", "dict", "mixed"]))
    leaf = draw(st.sampled_from([None, 1, "x", 1.5]))
    return Built(f"nested({depth}, {kind!r}, {leaf!r})", lambda: nested(depth, kind, leaf), size=depth * 8)


@st.composite
def huge_strings(draw: st.DrawFn) -> Built:
    size = draw(st.sampled_from([10_000, 65_536, 1_000_000, 4_000_000]))
    unit = draw(st.sampled_from(["x", "é", "한", "😀", "\ud800", "\x00", '"\\', TAG]))
    count = size // len(unit)
    return Built(f"{unit!r} * {count}", lambda: unit * count, size=size * 2)


self_referential = st.sampled_from(["list", "dict", "deep-dict"]).map(
    lambda kind: Built(f"self_containing({kind!r})", lambda: self_containing(kind))
)


# --- leaves -----------------------------------------------------------------------------

surrogates = st.characters(categories=["Cs"])  # lone surrogates: a str, but not UTF-8
texts = weighted(
    (st.text(max_size=30), 5),
    (st.builds(lambda a, s, b: a + s + b, st.text(max_size=8), surrogates, st.text(max_size=8)), 1),
)
keys = st.one_of(texts, st.sampled_from(["", TAG, "v", "args", "kwargs", "__class__", "self"]))
ints = st.one_of(st.integers(), st.integers(min_value=-(2**130), max_value=2**130),
                 st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 2**53 + 1]))
floats = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]))
offsets = st.timedeltas(min_value=-dt.timedelta(hours=23, minutes=59), max_value=dt.timedelta(hours=23, minutes=59))
timezones = st.one_of(st.none(), st.just(dt.UTC), st.builds(dt.timezone, offsets))


class Color(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


class Mode(enum.StrEnum):
    FAST = "fast"


class Name(str):
    """A str subclass, as an ORM field or a lazy translation string might be."""


class Count(int):
    pass


class Ratio(float):
    pass


Point = collections.namedtuple("Point", "x y")


class Opaque:
    def __init__(self) -> None:
        self.value = 1


def _generator() -> Any:
    yield 1


def _coroutine_value() -> Any:
    async def nothing() -> None:
        return None

    coro = nothing()
    coro.close()
    return coro


# Values Python holds that may or may not travel: each is either refused at delay() with a
# SerializationError or must come back as its JSON form (see roundtrip.same).
_PYTHON_ONLY: list[tuple[str, Callable[[], Any]]] = [
    ("{1, 2}", lambda: {1, 2}),
    ("frozenset({'a'})", lambda: frozenset({"a"})),
    ("1j", lambda: 1j),
    ("bytearray(b'ab')", lambda: bytearray(b"ab")),
    ("memoryview(b'ab')", lambda: memoryview(b"ab")),
    ("object()", object),
    ("Opaque()", Opaque),
    ("range(3)", lambda: range(3)),
    ("len", lambda: len),
    ("Ellipsis", lambda: ...),
    ("NotImplemented", lambda: NotImplemented),
    ("type", lambda: type),
    ("generator", _generator),
    ("closed coroutine", _coroutine_value),
    ("asyncio.Event()", asyncio.Event),
    ("Color.RED", lambda: Color.RED),
    ("Size.BIG", lambda: Size.BIG),
    ("Mode.FAST", lambda: Mode.FAST),
    ("Name('n')", lambda: Name("n")),
    ("Count(7)", lambda: Count(7)),
    ("Ratio(0.5)", lambda: Ratio(0.5)),
    ("Point(1, 2)", lambda: Point(1, 2)),
    ("OrderedDict(a=1)", lambda: collections.OrderedDict(a=1)),
    ("defaultdict(list, a=[1])", lambda: collections.defaultdict(list, a=[1])),
    ("Counter('aab')", lambda: collections.Counter("aab")),
    ("Decimal('sNaN')", lambda: decimal.Decimal("sNaN")),
    ("Decimal('-Infinity')", lambda: decimal.Decimal("-Infinity")),
    ("datetime.max aware", lambda: dt.datetime.max.replace(tzinfo=dt.UTC)),
    ("datetime.min aware", lambda: dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5)))),
    ("timedelta.max", lambda: dt.timedelta.max),
    ("timedelta.min", lambda: dt.timedelta.min),
    ("timedelta(microseconds=1)", lambda: dt.timedelta(microseconds=1)),
]
python_only = st.sampled_from(_PYTHON_ONLY).map(lambda pair: Built(pair[0], pair[1]))

json_scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)


def tag_shaped(inner: st.SearchStrategy[Any] = json_scalars) -> st.SearchStrategy[dict[Any, Any]]:
    """Dicts that look like the envelope's own tagged values, well-formed or not."""
    tag = st.one_of(st.sampled_from(KNOWN_TAGS), texts, st.integers(), st.none(),
                    st.sampled_from(["dict", "esc", "tag"]))
    good_v = st.sampled_from(["user input", "2024-01-02T03:04:05", "2024-13-45", "not-a-uuid", "NaN",
                              "AAAA", "!!!", "", "12:00", "1e999999999"])
    return st.one_of(
        st.builds(lambda t, v: {TAG: t, "v": v}, tag, st.one_of(good_v, inner)),
        st.builds(lambda t: {TAG: t}, tag),
        st.builds(lambda t, v, extra: {TAG: t, "v": v, **extra}, tag, inner,
                  st.dictionaries(keys, inner, min_size=1, max_size=2)),
        st.builds(lambda v: {"v": v, TAG: {TAG: "datetime", "v": v}}, good_v),
    )


leaves = weighted(
    (st.one_of(
        json_scalars,
        st.binary(max_size=40),
        st.datetimes(timezones=timezones),
        st.dates(),
        st.times(timezones=timezones),
        st.timedeltas(),
        st.uuids(),
        st.decimals(allow_nan=True, allow_infinity=True),
    ), 8),
    (tag_shaped(), 2),
    (python_only, 1),
)
non_str_keys = st.one_of(st.integers(), st.none(), st.booleans(), st.tuples(st.integers()), st.floats(),
                         st.binary(max_size=3))

values = st.recursive(
    leaves,
    lambda children: weighted(
        (st.lists(children, max_size=4), 3),
        (st.tuples(children, children), 1),
        (st.dictionaries(keys, children, max_size=4), 3),
        (tag_shaped(children), 2),
        (st.dictionaries(non_str_keys, children, min_size=1, max_size=2), 1),
    ),
    max_leaves=12,
)
special_values = st.one_of(deep_values(), huge_strings(), self_referential)
any_value = weighted((values, 6), (special_values, 1))
call_args = st.lists(any_value, max_size=3)
# "self" is delay()'s own first parameter, so no Python call can pass it by name.
call_kwargs = st.dictionaries(keys.filter(lambda k: k != "self"), any_value, max_size=3)


# --- exceptions a task may raise ----------------------------------------------------------


def _build_exception(kind: str, message: Any) -> Built:
    makers: dict[str, Callable[[], BaseException]] = {
        "FuzzError": lambda: harness.FuzzError(materialize(message)),
        "FuzzError()": lambda: harness.FuzzError(),
        "FuzzError(a, b, c)": lambda: harness.FuzzError(materialize(message), 2, None),
        "TwoArgError": lambda: harness.TwoArgError(materialize(message), "detail"),
        "BadStrError": lambda: harness.BadStrError(materialize(message)),
        "ValueError": lambda: ValueError(materialize(message)),
        "UnicodeDecodeError": lambda: UnicodeDecodeError("utf-8", b"\xff\xfe", 0, 1, "invalid start byte"),
        "OSError": lambda: OSError(2, materialize(message), "/tmp/\udcff"),
        "RecursionError": _real_recursion_error,
        "StopIteration": lambda: StopIteration(materialize(message)),
        "StopAsyncIteration": lambda: StopAsyncIteration(materialize(message)),
        "SystemExit": lambda: SystemExit(materialize(message)),
        "KeyboardInterrupt": lambda: KeyboardInterrupt(materialize(message)),
        "GeneratorExit": lambda: GeneratorExit(materialize(message)),
        "asyncio.CancelledError": lambda: asyncio.CancelledError(materialize(message)),
        "FuzzBaseException": lambda: harness.FuzzBaseException(materialize(message)),
        "chained": lambda: _chained(materialize(message)),
    }
    return Built(f"{kind}({message!r})", makers[kind], size=heft(message))


def _real_recursion_error() -> BaseException:
    def down(n: int) -> int:
        return down(n + 1) + 1

    try:
        down(0)
    except RecursionError as exc:
        return exc
    raise AssertionError("unreachable")


def _chained(message: Any) -> BaseException:
    try:
        try:
            raise KeyError(message)
        except KeyError as inner:
            raise harness.FuzzError("outer") from inner
    except harness.FuzzError as exc:
        return exc


EXCEPTION_KINDS = ("FuzzError", "FuzzError()", "FuzzError(a, b, c)", "TwoArgError", "BadStrError", "ValueError",
                   "UnicodeDecodeError", "OSError", "RecursionError", "StopIteration", "StopAsyncIteration",
                   "chained")
BASE_EXCEPTION_KINDS = ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "asyncio.CancelledError",
                        "FuzzBaseException")
messages = st.one_of(texts, any_value)
exceptions = st.builds(_build_exception, st.sampled_from(EXCEPTION_KINDS), messages)
base_exceptions = st.builds(
    _build_exception, st.sampled_from(BASE_EXCEPTION_KINDS),
    st.one_of(st.none(), st.integers(-3, 300), texts, st.sampled_from([2**70, "\ud800"])),
)


# --- raw envelopes --------------------------------------------------------------------


class Raw:
    """Text spliced into a JSON body as is (malformed numbers, bad escapes, control characters)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text!r})"


class Deep:
    """``depth`` nested arrays or objects around ``inner``, written without recursion."""

    def __init__(self, depth: int, kind: str, inner: Any) -> None:
        self.depth, self.kind, self.inner = depth, kind, inner

    def __repr__(self) -> str:
        return f"Deep({self.depth}, {self.kind!r}, {self.inner!r})"


class SameId:
    """Stands for the id the message is published under."""

    def __repr__(self) -> str:
        return "SameId"


SAME_ID = SameId()


class EvilPickle:
    """A pickle whose loading calls harness.pickle_ran: the worker must refuse to load it."""

    def __reduce__(self) -> Any:
        return (harness.pickle_ran, ("the worker unpickled a message payload",))


EVIL_PAYLOAD = base64.b64encode(pickle.dumps(([EvilPickle()], {}))).decode()


def emit(value: Any, task_id: str, ensure_ascii: bool) -> str:
    """JSON text for ``value``: NaN and Infinity literals, lone surrogates and big ints kept."""
    if value is SAME_ID:
        return json.dumps(task_id)
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Deep):
        opening, closing = ("[", "]") if value.kind == "list" else ('{"d":', "}")
        return opening * value.depth + emit(value.inner, task_id, ensure_ascii) + closing * value.depth
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ensure_ascii)
    if isinstance(value, dict):
        members = (f"{json.dumps(str(k), ensure_ascii=ensure_ascii)}:{emit(v, task_id, ensure_ascii)}"
                   for k, v in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(emit(v, task_id, ensure_ascii) for v in value) + "]"
    raise TypeError(f"cannot emit {value!r}")


raw_fragments = st.sampled_from([
    "1e999", "-1e999", "-0", "01", "1.", ".5", "+1", "0x10", "NaN", "Infinity", "-Infinity", "tru", "nul",
    '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', '"\\x41"', '"\x00"', '"\n"', '"\\"', "[1,]", "{,}", '{"a"}',
    "[1 2]", '{"a":1,"a":2}', "123456789012345678901234567890", "1" * 5000, "[" * 50, "]", "}",
])
json_leaves = weighted((json_scalars, 6), (tag_shaped(), 2), (raw_fragments.map(Raw), 1))
plain_json = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)), max_leaves=8)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        tag_shaped(children),
        st.builds(Deep, DEPTHS, st.sampled_from(["list", "dict"]), children),
    ),
    max_leaves=10,
)

task_names = st.one_of(
    st.sampled_from([*TASK_NAMES, "celery.map", "celery.starmap", "celery.chord_unlock", "nope.missing", "",
                     "fuzz.echo ", "FUZZ.ECHO", "fuzz"]),
    texts,
)
signature_dicts = st.fixed_dictionaries(
    {"task": task_names, "args": st.lists(json_values, max_size=2),
     "kwargs": st.dictionaries(keys, json_values, max_size=2)},
    optional={"options": st.dictionaries(st.sampled_from(["queue", "priority", "task_id", "countdown", "link"]),
                                         json_values, max_size=2),
              "subtask_type": st.sampled_from(["chain", "group", "chord", None, "x"]),
              "immutable": st.booleans()},
)
# Values of the right type for each field (a message that decodes but means nonsense).
field_values: dict[str, st.SearchStrategy[Any]] = {
    "v": st.one_of(st.integers(-2, 3), ints),
    "id": st.one_of(st.just(SAME_ID), texts),
    "task": task_names,
    "args": st.lists(json_values, max_size=4),
    "kwargs": st.dictionaries(keys, json_values, max_size=4),
    "queue": texts,
    "priority": st.integers(-100, 100),
    "eta_ms": st.one_of(st.none(), ints),
    "expires_ms": st.one_of(st.none(), ints, st.sampled_from([0, 1, 2**62, 32503680000000])),
    "retries": st.one_of(st.integers(-5, 1000), ints),
    "root_id": st.one_of(st.none(), texts),
    "parent_id": st.one_of(st.none(), texts),
    "group_id": st.one_of(st.none(), texts),
    "group_index": st.one_of(st.none(), ints),
    "ignore_result": st.just(False),  # True leaves no result to wait for; its wrong types are drawn below
    "headers": st.dictionaries(keys, json_values, max_size=3),
    "link": st.lists(signature_dicts, max_size=2),
    "link_error": st.lists(signature_dicts, max_size=2),
    "chord": st.one_of(st.none(), st.fixed_dictionaries(
        {"group_id": texts, "total": st.integers(-1, 3)}, optional={"body": signature_dicts})),
    "chain": st.lists(signature_dicts, max_size=2),
    "time_limit": st.one_of(st.none(), st.floats(allow_nan=False), st.sampled_from([0.0, -1.0, 1e-9, 1e308])),
    "soft_time_limit": st.one_of(st.none(), st.floats(allow_nan=False), st.sampled_from([0.0, -1.0, 1e-9, 1e308])),
    "serializer": st.sampled_from(["json", "pickle", "yaml", "msgpack", "", "JSON"]),
    "payload": st.one_of(st.none(), texts, st.just(EVIL_PAYLOAD)),
    "shadow": st.one_of(st.none(), texts),
    "sent_at_ms": st.one_of(st.floats(), ints),
}


@dataclass
class RawMessage:
    """One message written straight into the queue, drawn as a recipe that prints short."""

    kind: str
    spec: Any = None
    ensure_ascii: bool = False
    cut: int | None = None
    extra: bytes = b""

    def body(self, task_id: str) -> bytes:
        if self.kind == "bytes":
            return bytes(self.spec)
        text = emit(self.spec, task_id, self.ensure_ascii)
        raw = text.encode("utf-8", "surrogatepass")
        if self.cut is not None:
            raw = raw[: self.cut % (len(raw) + 1)]
        return raw + self.extra

    def answer_ids(self, task_id: str) -> list[str]:
        """The ids a result may be written under: the published one, and the envelope's own."""
        ids = [task_id]
        if isinstance(self.spec, dict) and isinstance(self.spec.get("id"), str) and self.spec["id"] != task_id:
            ids.append(self.spec["id"])
        return ids


@st.composite
def decodable_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Envelopes whose every field has its type: they decode, but may mean nonsense."""
    envelope: dict[str, Any] = {"v": 1, "id": SAME_ID, "task": draw(st.sampled_from([harness.ECHO, harness.AECHO])),
                                "args": draw(st.lists(plain_json, max_size=3)),
                                "kwargs": draw(st.dictionaries(keys, plain_json, max_size=2))}
    optional = [name for name in ENVELOPE_FIELDS if name not in ("v", "id")]
    for name in draw(st.lists(st.sampled_from(optional), max_size=4, unique=True)):
        envelope[name] = draw(field_values[name])
    return envelope


@st.composite
def near_valid_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Envelopes with fields of the wrong type, missing, or unknown."""
    envelope: dict[str, Any] = {"v": 1, "id": SAME_ID, "task": draw(st.sampled_from([harness.ECHO, harness.AECHO])),
                                "args": draw(st.lists(json_values, max_size=3)),
                                "kwargs": draw(st.dictionaries(keys, json_values, max_size=2))}
    for name in draw(st.lists(st.sampled_from(ENVELOPE_FIELDS), max_size=4, unique=True)):
        envelope[name] = draw(field_values[name])
    for name in draw(st.lists(st.sampled_from(ENVELOPE_FIELDS), max_size=2, unique=True)):
        envelope[name] = draw(json_values)  # most likely the wrong type
    for name in draw(st.lists(st.sampled_from(["v", "id", "task", "args", "kwargs"]), max_size=2, unique=True)):
        envelope.pop(name, None)
    envelope.update(draw(st.dictionaries(keys, json_values, max_size=2)))  # unknown (or repeated) fields
    if envelope.get("ignore_result") is True:
        envelope["ignore_result"] = False
    return envelope


raw_messages = weighted(
    (st.builds(RawMessage, st.just("decodable envelope"), decodable_envelopes(), st.booleans()), 4),
    (st.builds(RawMessage, st.just("broken envelope"), near_valid_envelopes(), st.booleans()), 3),
    (st.builds(RawMessage, st.just("cut envelope"), decodable_envelopes(), st.booleans(),
               st.one_of(st.none(), st.integers(0, 400)), st.binary(max_size=8)), 1),
    (st.builds(RawMessage, st.just("bytes"), st.binary(max_size=300)), 1),
    (st.builds(RawMessage, st.just("json"), json_values, st.booleans()), 1),
    (st.builds(RawMessage, st.just("pickle envelope"), st.just({"v": 1, "id": SAME_ID, "task": harness.ECHO,
                                                               "serializer": "pickle", "payload": EVIL_PAYLOAD})), 1),
)
id_prefixes = st.one_of(st.just(""), st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=12),
                        st.sampled_from(["[/x]", "[bold]", "%s", "{0}", "*", "?", "\\", "{fuzz}", " ", "celery"]))
