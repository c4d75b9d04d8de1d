"""The wait for a ready result that every store without server push shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .._notify import Notifier, wait_for_notice
from ..message import READY_STATES, ResultRecord


async def wait_for_ready_record(
    fetch: Callable[[], Awaitable[ResultRecord | None]], notifier: Notifier, key: str,
    timeout_s: float | None, poll_bounds_s: tuple[float, float] | None,
) -> ResultRecord | None:
    """The wait every store without server push shares.

    Subscribes to the in-process notifier before each look, so a write in this process
    wakes the waiter at once. ``poll_bounds_s`` (first, longest) adds a look with a
    doubling back-off for writers in other processes; None waits on notices alone.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    poll_s = poll_bounds_s[0] if poll_bounds_s else None
    while True:
        notice = notifier.subscribe(key)
        try:
            record = await fetch()
            if record is not None and record.state in READY_STATES:
                return record
            remaining_s = 3600.0 if deadline is None else deadline - loop.time()
            if remaining_s <= 0:
                return record
            if poll_s is not None and poll_bounds_s is not None:
                await wait_for_notice(notice, min(poll_s, remaining_s))
                poll_s = min(poll_s * 2, poll_bounds_s[1])
            else:
                await wait_for_notice(notice, remaining_s)
        finally:
            notifier.unsubscribe(key, notice)
