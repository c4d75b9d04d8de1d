"""What "the same value came back" means for a value that went through JSON.

A value ``delay()`` accepted must come back as its JSON form, exactly: tuples and
namedtuples as lists, dict subclasses as dicts, str/int/float subclasses and enums with
a plain value as that plain value; NaN as NaN (which is not equal to itself), a Decimal
digit for digit (``Decimal('NaN')`` and ``sNaN`` too), an aware datetime or time with the
same UTC offset. Nothing may turn into something else without a word (NaN into None, a
user's dict into a datetime). The walk is iterative: values may be nested 100,000 deep.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import uuid
from typing import Any

_MAX_STEPS = 5_000_000


def _path(link: tuple[Any, ...] | None) -> str:
    parts = []
    while link is not None:
        link, key = link
        parts.append(f"[{key!r}]")
    return "value" + "".join(reversed(parts))


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 120 else text[:117] + "..."


def difference(expected: Any, got: Any) -> str | None:
    """None when ``got`` is what ``expected`` must come back as; else where and how it differs."""
    stack: list[tuple[Any, Any, tuple[Any, ...] | None]] = [(expected, got, None)]
    on_path: set[int] = set()
    steps = 0
    while stack:
        steps += 1
        if steps > _MAX_STEPS:
            return "the value is too large to compare"
        want, have, link = stack.pop()
        problem = _scalar_difference(want, have)
        if problem is not None:
            return f"{_path(link)}: {problem}"
        if isinstance(want, list | tuple):
            if id(want) in on_path:
                continue
            on_path.add(id(want))
            if type(have) is not list or len(have) != len(want):
                return f"{_path(link)}: sent {_short(want)}, got {_short(have)}"
            stack.extend((w, h, (link, i)) for i, (w, h) in enumerate(zip(want, have, strict=True)))
        elif isinstance(want, dict):
            if id(want) in on_path:
                continue
            on_path.add(id(want))
            if type(have) is not dict or set(have) != set(want):
                return f"{_path(link)}: sent {_short(want)}, got {_short(have)}"
            stack.extend((w, have[k], (link, k)) for k, w in want.items())
    return None


def _scalar_difference(want: Any, have: Any) -> str | None:
    def unlike() -> str:
        return f"sent {_short(want)} ({type(want).__name__}), got {_short(have)} ({type(have).__name__})"

    if isinstance(want, list | tuple | dict):
        return None  # compared by the caller
    if isinstance(want, enum.Enum) and not isinstance(want, int | str | float):
        want = want.value
    if want is None or isinstance(want, bool):
        return None if have is want else unlike()
    if isinstance(want, int):
        if isinstance(want, enum.Enum):
            want = want.value
        return None if type(have) is int and have == int(want) else unlike()
    if isinstance(want, float):
        if type(have) is not float:
            return unlike()
        if math.isnan(want):
            return None if math.isnan(have) else unlike()
        return None if have == float(want) else unlike()
    if isinstance(want, str):
        if isinstance(want, enum.Enum):
            want = want.value
        return None if type(have) is str and have == str.__str__(want) else unlike()
    if isinstance(want, decimal.Decimal):
        return None if type(have) is decimal.Decimal and str(have) == str(want) else unlike()
    if isinstance(want, dt.datetime):
        same = (type(have) is dt.datetime and have == want and have.utcoffset() == want.utcoffset()
                and (have.tzinfo is None) == (want.tzinfo is None))
        return None if same else unlike()
    if isinstance(want, dt.date):
        return None if type(have) is dt.date and have == want else unlike()
    if isinstance(want, dt.time):
        same = type(have) is dt.time and have == want and have.utcoffset() == want.utcoffset()
        return None if same else unlike()
    if isinstance(want, dt.timedelta):
        return None if type(have) is dt.timedelta and have == want else unlike()
    if isinstance(want, uuid.UUID):
        return None if type(have) is uuid.UUID and have == want else unlike()
    if isinstance(want, bytes | bytearray | memoryview):
        return None if type(have) is bytes and have == bytes(want) else unlike()
    if isinstance(want, set | frozenset):
        try:
            return None if isinstance(have, set | frozenset | list) and set(have) == set(want) else unlike()
        except TypeError:
            return unlike()
    return f"sent {_short(want)} ({type(want).__name__}), which has no JSON form, yet delay() accepted it " \
           f"and it came back as {_short(have)}"
