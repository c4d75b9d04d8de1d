"""Rate limits: ``"10/s"``, ``"100/m"``, ``"1000/h"`` per task name, across all workers.

The bucket lives in the broker, so ten workers together run at most the limit. A task
over its limit is not held by the worker: it goes back to the schedule (same id, no
delivery counted against it) for when the next token is due, and the slot is freed.
"""

from __future__ import annotations

from ..exceptions import ConfigurationError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str | float | int | None) -> float | None:
    """Tasks per second, or None for no limit."""
    if rate is None or rate == "" or rate == 0:
        return None
    if isinstance(rate, (int, float)):
        return float(rate)
    count, _, unit = str(rate).partition("/")
    try:
        per_second = float(count) / _UNITS[unit or "s"]
    except (ValueError, KeyError):
        raise ConfigurationError(
            f"rate limit {rate!r} is not understood; write it like '10/s', '100/m' or '1000/h'"
        ) from None
    return per_second or None


def bucket_capacity(per_second: float) -> float:
    """Burst size: one second's worth, and at least one task."""
    return max(1.0, per_second)
