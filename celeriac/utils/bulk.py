"""Sending a canvas builds its objects in bulk: the cyclic collector is paused meanwhile.

A group of thousands of members makes several objects per member (the copied signature,
its frozen result, its message) that all stay reachable until the send returns. CPython's
collector counts them as they are made, and after ~70,000 it runs a full collection over
every object in the process: ~20 ms in a bare producer, far more in a Django process,
and it cannot free any of them. Paused, the objects are freed by their reference counts
once the send is over, before a collection ever looks at them; cyclic garbage made
meanwhile by other threads waits for the next collection.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause automatic collections for the block, unless they were already off.

    Process-wide, as the collector is: a second pause that overlaps (another thread, or
    coroutine) leaves the switch alone, and the first to end resumes collections.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
