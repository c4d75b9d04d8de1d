"""Turning task arguments and results into JSON and back.

JSON is the default wire format. Values JSON cannot hold natively (datetimes, UUIDs,
Decimals, bytes, timedeltas, NaN and the infinities) travel as small tagged objects,
``{"__celeriac__": kind, "v": ...}``, so they arrive as the same type. A user's own dict
that holds the tag key travels wrapped in a ``"dict"`` tag, so user data is never read as
a tag. Anything else (an unknown type, a string with a lone surrogate, nesting deeper than
``MAX_DEPTH``) fails on the producer's side, naming the argument, before a message exists.
Pickle is possible only when producer and worker both opt in.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import math
import pickle
import uuid
from collections.abc import Callable
from typing import Any

from .exceptions import SerializationError

TAG = "__celeriac__"
_TAG_BYTES = TAG.encode()
_PLAIN = (str, int, bool, type(None))
# Deeper values are refused at the producer. The bound keeps every process's recursive
# encoders and decoders (ours and msgspec's) far from Python's recursion limit, so a
# message that was accepted can always be decoded by the worker.
MAX_DEPTH = 200
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    dt.datetime: ("datetime", lambda v: v.isoformat()),
    dt.date: ("date", lambda v: v.isoformat()),
    dt.time: ("time", lambda v: v.isoformat()),
    # Whole microseconds: float seconds lose them past about 300 years.
    dt.timedelta: ("timedelta", lambda v: v // dt.timedelta(microseconds=1)),
    uuid.UUID: ("uuid", str),
    decimal.Decimal: ("decimal", str),
    bytes: ("bytes", lambda v: base64.b64encode(v).decode()),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(microseconds=v) if type(v) is int else dt.timedelta(seconds=v),
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "float": lambda v: _NON_FINITE[v],
}
# What a decoder may raise on a malformed tagged value.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, OverflowError, binascii.Error, decimal.InvalidOperation)


def to_wire(value: Any, where: str = "value", depth: int = 0) -> Any:
    """Return ``value`` made of JSON types only; ``where`` names it in the error."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else {TAG: "float", "v": repr(value)}
    if depth >= MAX_DEPTH:
        raise SerializationError(_too_deep(where))
    if kind is list or kind is tuple:
        return [to_wire(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise SerializationError(
                    f"{where} has a key of type {type(key).__name__} ({key!r}); "
                    "JSON object keys must be strings"
                )
            out[key] = to_wire(item, f"{where}[{key!r}]", depth + 1)
        # Wrapped so the worker reads it back as this dict, never as a tagged value.
        return {TAG: "dict", "v": out} if TAG in out else out
    for base, (tag, encode) in _ENCODERS.items():
        if isinstance(value, base):
            return {TAG: tag, "v": encode(value)}
    if isinstance(value, (list, tuple)):
        return to_wire(list(value), where, depth)
    if isinstance(value, dict):
        return to_wire(dict(value), where, depth)
    if isinstance(value, (str, int, float)):  # subclasses such as enums travel as their plain value
        if hasattr(value, "value") and type(value.value) in (str, int, float, bool):
            return to_wire(value.value, where, depth)
        if isinstance(value, str):
            return str.__str__(value)  # an exact str, whatever the subclass's __str__ says
        return to_wire(int.__int__(value) if isinstance(value, int) else float.__float__(value), where, depth)
    if kind.__module__ == "celeriac.result" and hasattr(value, "as_tuple"):
        return to_wire(value.as_tuple(), where, depth)  # a result travels as its ids, as in Celery
    raise SerializationError(
        f"{where} is a {kind.__module__}.{kind.__qualname__}, which cannot be sent as JSON; "
        "pass plain data (str, int, float, bool, None, list, dict, datetime, UUID, Decimal, "
        "bytes) such as the object's id, or opt in to pickle with serializer='pickle'"
    )


def from_wire(value: Any) -> Any:
    """Undo :func:`to_wire`; a malformed tagged value raises ``SerializationError``."""
    try:
        return _from_wire(value)
    except RecursionError:
        raise SerializationError("value is nested too deeply to decode") from None


def _from_wire(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return [_from_wire(item) for item in value]
    if kind is dict:
        if TAG not in value:
            return {key: _from_wire(item) for key, item in value.items()}
        tag = value[TAG]
        if len(value) != 2 or "v" not in value:
            raise SerializationError(f"malformed tagged value: {_short(value)}")
        if tag == "dict" and type(value["v"]) is dict:
            return {key: _from_wire(item) for key, item in value["v"].items()}
        decode = _DECODERS.get(tag) if type(tag) is str else None
        if decode is None:
            raise SerializationError(f"unknown tagged value type {_short(tag)}")
        try:
            return decode(value["v"])
        except _DECODE_ERRORS as exc:
            raise SerializationError(f"tagged {tag} value {_short(value['v'])} cannot be decoded: {exc}") from exc
    return value


def _too_deep(where: str) -> str:
    head, bracket, path = where.partition("[")
    if len(path) > 40:  # the path of a deep value repeats [0] hundreds of times
        where = f"{head}{bracket}{path[:40]}..."
    return f"{where} is nested more than {MAX_DEPTH} levels deep; flatten it or pass a reference"


def _short(value: Any, limit: int = 80) -> str:
    text = safe_text(repr(value))
    return text if len(text) <= limit else text[:limit] + "..."


def safe_text(text: str) -> str:
    """``text`` with lone surrogates escaped, so it can always be written as UTF-8.

    For what only people read (exception messages, tracebacks, dead-letter reasons): a
    file name from ``os.listdir`` must not stop a result from being stored.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def find_unencodable(value: Any, where: str, depth: int = 0) -> str | None:
    """Why ``value`` cannot be encoded as JSON, naming the part at fault; None if it can.

    Called only after an encoder failed, to turn its error into one that says where.
    """
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return (f"{where} holds a string that is not valid Unicode ({exc.reason} at position "
                    f"{exc.start}: {value[exc.start:exc.end]!a}), so it cannot be sent as UTF-8 JSON. Such "
                    "strings usually come from os.listdir() or sys.argv on a name that is not UTF-8: "
                    "send it as bytes (os.fsencode(name)) or replace the bad characters first")
        return None
    if depth >= MAX_DEPTH:
        return _too_deep(where)
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_unencodable(key, f"a key of {where}", depth + 1) or find_unencodable(
                item, f"{where}[{safe_text(repr(key))}]", depth + 1)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = find_unencodable(item, f"{where}[{i}]", depth + 1)
            if found:
                return found
    elif not isinstance(value, (int, float, bool, type(None))):
        return f"{where} is a {type(value).__qualname__}, which cannot be sent as JSON"
    return None


def needs_from_wire(raw: bytes) -> bool:
    """Whether a raw message holds tagged values (most hold none, so decoding skips the walk)."""
    return _TAG_BYTES in raw


def check_args(task_name: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> tuple[
    list[Any], dict[str, Any]
]:
    """Convert call arguments to wire form, naming the bad one if any."""
    wire_args = [to_wire(a, f"argument {i} of {task_name}") for i, a in enumerate(args)]
    wire_kwargs: dict[str, Any] = {}
    for key, item in kwargs.items():
        wire_kwargs[key] = to_wire(item, f"keyword argument {safe_text(repr(key))} of {task_name}")
    if TAG in wire_kwargs:  # a keyword argument named like the tag: the mapping is escaped too
        wire_kwargs = {TAG: "dict", "v": wire_kwargs}
    return wire_args, wire_kwargs


def dumps_pickle(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def loads_pickle(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))
