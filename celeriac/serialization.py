"""Turning task arguments and results into JSON and back.

JSON is the default wire format. Values JSON cannot hold natively (datetimes, UUIDs,
Decimals, bytes, timedeltas) travel as small tagged objects so they arrive as the same
type; anything else fails on the producer's side, naming the argument, before a message
exists. Pickle is possible only when producer and worker both opt in.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import pickle
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from .exceptions import SerializationError

TAG = "__celeriac__"
_TAG_BYTES = TAG.encode()
_PLAIN = (str, int, float, bool, type(None))

_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    dt.datetime: ("datetime", lambda v: v.isoformat()),
    dt.date: ("date", lambda v: v.isoformat()),
    dt.time: ("time", lambda v: v.isoformat()),
    dt.timedelta: ("timedelta", lambda v: v.total_seconds()),
    uuid.UUID: ("uuid", str),
    decimal.Decimal: ("decimal", str),
    bytes: ("bytes", lambda v: base64.b64encode(v).decode()),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(seconds=v),
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "bytes": base64.b64decode,
}


def to_wire(value: Any, where: str = "value") -> Any:
    """Return ``value`` made of JSON types only; ``where`` names it in the error."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list or kind is tuple:
        return [to_wire(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise SerializationError(
                    f"{where} has a key of type {type(key).__name__} ({key!r}); "
                    "JSON object keys must be strings"
                )
            out[key] = to_wire(item, f"{where}[{key!r}]")
        return out
    for base, (tag, encode) in _ENCODERS.items():
        if isinstance(value, base):
            return {TAG: tag, "v": encode(value)}
    if isinstance(value, (list, tuple)):
        return [to_wire(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return to_wire(dict(value), where)
    if isinstance(value, (str, int, float)):  # str/int subclasses such as enums
        return value.value if hasattr(value, "value") and type(value.value) in _PLAIN else value
    raise SerializationError(
        f"{where} is a {kind.__module__}.{kind.__qualname__}, which cannot be sent as JSON; "
        "pass plain data (str, int, float, bool, None, list, dict, datetime, UUID, Decimal, "
        "bytes) such as the object's id, or opt in to pickle with serializer='pickle'"
    )


def from_wire(value: Any) -> Any:
    """Undo :func:`to_wire`."""
    kind = type(value)
    if kind is list:
        return [from_wire(item) for item in value]
    if kind is dict:
        tag = value.get(TAG)
        if tag is not None and len(value) == 2:
            decode = _DECODERS.get(tag)
            if decode is None:
                raise SerializationError(f"unknown tagged value type {tag!r}")
            return decode(value["v"])
        return {key: from_wire(item) for key, item in value.items()}
    return value


def needs_from_wire(raw: bytes) -> bool:
    """Whether a raw message holds tagged values (most hold none, so decoding skips the walk)."""
    return _TAG_BYTES in raw


def check_args(task_name: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> tuple[
    list[Any], dict[str, Any]
]:
    """Convert call arguments to wire form, naming the bad one if any."""
    wire_args = [to_wire(a, f"argument {i} of {task_name}") for i, a in enumerate(args)]
    wire_kwargs = {}
    for key, item in kwargs.items():
        wire_kwargs[key] = to_wire(item, f"keyword argument {key!r} of {task_name}")
    return wire_args, wire_kwargs


def dumps_pickle(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def loads_pickle(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))


json_encoder = msgspec.json.Encoder()
json_decoder = msgspec.json.Decoder()


def dumps_json(value: Any) -> bytes:
    return json_encoder.encode(value)


def loads_json(raw: bytes | str) -> Any:
    return json_decoder.decode(raw)
