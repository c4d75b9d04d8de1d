"""How sync callers run celeriac's async code: brokers and stores are written once, async.

A thread with no running event loop (a Django view, a script, a sync task on a pool
thread) drives a private loop of its own, kept for the thread's life and run only while
one of its calls is under way: ``delay()`` then costs one round trip to the broker and no
switch to another thread. That loop polls its sockets for a moment before it sleeps (see
``SpinningSelector``). A blocking call made from inside a running loop (a sync call
in async code, which blocks that loop anyway) goes to the process's bridge loop on a
background thread. After a fork the child starts afresh: the parent's loops and their
connections are not usable there.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from . import _state

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_local = threading.local()
_generation = 0  # bumped at fork: loops made before it belong to the parent


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: its sockets and callbacks are the cheaper ones for a loop that runs."""
    try:  # uvloop is optional
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
            new = new_loop()
            ready = threading.Event()
            thread = threading.Thread(target=_serve, args=(new, ready), name="celeriac-bridge", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = new, thread
        return _loop


# How long a private loop polls before it sleeps in the kernel. A broker's reply on
# loopback comes in 30-100 us; waking a thread that slept in epoll_wait costs about as
# much again on a virtual machine (measured here: a Redis PING took 57-83 us with a
# blocking recv and 22-30 us with a polling one). The caller is blocked on that reply
# anyway, so polling spends only its own time; past this budget it sleeps as usual.
SPIN_S = 0.0005


_yield_cpu = getattr(os, "sched_yield", lambda: None)


class SpinningSelector(selectors.DefaultSelector):
    """The platform's selector, polling without sleeping for up to ``SPIN_S`` first."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(timeout)
        started = time.perf_counter()
        spin_until = started + (SPIN_S if timeout is None else min(SPIN_S, timeout))
        while True:
            ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
            now = time.perf_counter()
            if ready or now >= spin_until:
                break
            # Give the CPU up between polls: a server woken from idle is often queued on
            # this very CPU, and a poll that never yields keeps it waiting for the next
            # scheduler tick (measured: a PING after idle took 1.2 ms polling, 0.18 ms
            # polling with a yield, 0.15 ms blocking).
            _yield_cpu()
        if ready or timeout is None:
            return ready or super().select(None)
        return super().select(max(0.0, timeout - (now - started)))


class _ThreadLoop:
    """A thread's private loop; closed with its connections when the thread goes away."""

    def __init__(self) -> None:
        # asyncio's own loop, not uvloop: uvloop sets up signal wake-ups on every
        # run_until_complete, which costs more than the round trip it drives.
        self.loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop(SpinningSelector())
        self.generation = _generation

    def __del__(self) -> None:
        loop = self.loop
        if loop.is_closed() or loop.is_running() or self.generation != _generation:
            return
        try:  # close what was opened for this loop: every app's clients (app.py adds that finalizer)
            for finalizer in tuple(_state.loop_finalizers):
                loop.run_until_complete(finalizer(loop))
        except Exception:  # a dying thread must not raise from a finalizer
            pass
        loop.close()


def _thread_loop() -> asyncio.AbstractEventLoop:
    holder: _ThreadLoop | None = getattr(_local, "holder", None)
    if holder is None or holder.generation != _generation or holder.loop.is_closed():
        holder = _local.holder = _ThreadLoop()
    return holder.loop


def run_sync(coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
    """Run ``coro`` to completion for a sync caller and return its result."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is None:
        loop = _thread_loop()
        if timeout_s is not None:
            return loop.run_until_complete(asyncio.wait_for(coro, timeout_s))
        return loop.run_until_complete(coro)
    bridge = bridge_loop()
    if running is bridge:
        coro.close()
        raise RuntimeError(
            "a blocking celeriac call was made on celeriac's own bridge loop; "
            "use the async twin (adelay, aget, ...) instead"
        )
    return asyncio.run_coroutine_threadsafe(coro, bridge).result(timeout_s)


def _reset_after_fork() -> None:
    global _loop, _thread, _generation
    _loop = None
    _thread = None
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
