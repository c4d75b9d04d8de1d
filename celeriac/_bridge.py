"""One event loop on a background thread per process, serving sync callers.

Brokers and result stores are written once, async. A Django view or a sync task calls
``delay()``; the call runs on this loop and the caller waits for its future. After a fork
the child gets a fresh loop: the parent's thread and its connections do not exist there.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: a sync delay() is mostly this loop's socket and wake-up cost."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def bridge_loop() -> asyncio.AbstractEventLoop:
    """The process's background loop, started on first use."""
    global _loop, _thread
    loop = _loop
    if loop is not None:
        return loop
    with _lock:
        if _loop is None:
            new_loop = _new_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_serve, args=(new_loop, ready), name="celeriac-bridge", daemon=True
            )
            thread.start()
            ready.wait()
            _loop, _thread = new_loop, thread
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
    """Run ``coro`` on the bridge loop and wait for its result."""
    loop = bridge_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError(
            "a blocking celeriac call was made on celeriac's own bridge loop; "
            "use the async twin (adelay, aget, ...) instead"
        )
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    return future.result(timeout_s)


def _reset_after_fork() -> None:
    # The parent's loop thread is not running in the child; forget it and start anew.
    global _loop, _thread
    _loop = None
    _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
