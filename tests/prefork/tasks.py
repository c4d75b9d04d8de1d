"""Tasks the prefork tests run in real worker processes (``-P prefork``).

Most return the pid of the process that ran them, so a test can tell which child ran
what. ``PREFORK_BROKER_URL`` names the broker (its result store holds the results);
``PREFORK_NOTES`` a file that tasks append ``<event> <task id> <pid>`` lines to, so a
test can find the child running a task (to kill it) without timing anything.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import decimal
import os
import signal
import time
import uuid
from typing import Any

from celeriac import Celery, Task
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.signals import worker_process_init, worker_ready

app = Celery(
    "prefork_tests",
    broker=os.environ.get("PREFORK_BROKER_URL", "memory://"),
    broker_lease_seconds=float(os.environ.get("PREFORK_LEASE_S", "5")),
    task_reject_on_worker_lost=os.environ.get("PREFORK_REJECT_ON_LOST") == "1",
)

_held: list[bytearray] = []  # what grow() keeps alive in its child
_initialised_in: list[int] = []  # pids in which worker_process_init ran


@worker_process_init.connect
def _child_started(**_: Any) -> None:
    _initialised_in.append(os.getpid())


@worker_ready.connect
def _exit_when_ready(**_: Any) -> None:
    """``PREFORK_EXIT_ON_READY=<code>``: a worker process that dies as soon as it starts."""
    code = os.environ.get("PREFORK_EXIT_ON_READY")
    if code:
        os._exit(int(code))


def note(event: str, task_id: str | None) -> None:
    line = f"{event} {task_id} {os.getpid()}\n"
    fd = os.open(os.environ["PREFORK_NOTES"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task
def where() -> int:
    return os.getpid()


@app.task
def burn(seconds: float) -> int:
    """CPU for ``seconds`` of this process's CPU time (not wall time)."""
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass
    return os.getpid()


@app.task
async def on_the_loop() -> int:
    return os.getpid()


@app.task(time_limit=2)
def runaway() -> None:
    while True:
        pass


@app.task(soft_time_limit=1, time_limit=30)
def catches_soft_limit() -> str:
    try:
        time.sleep(20)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "never interrupted"


@app.task(soft_time_limit=1, time_limit=30)
def ignores_soft_limit() -> None:
    time.sleep(20)


@app.task
def segfault() -> None:
    ctypes.string_at(0)


@app.task
def exits(code: int) -> None:
    os._exit(code)


@app.task(bind=True)
def hold(self: Any, seconds: float) -> int:
    note("start", self.request.id)
    time.sleep(seconds)
    note("end", self.request.id)
    return os.getpid()


@app.task(bind=True)
def gate(self: Any, path: str) -> int:
    """Runs until ``path`` exists (the test creates it), so tests can hold tasks without timing them."""
    note("start", self.request.id)
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


@app.task(bind=True)
def dies_once(self: Any) -> int:
    """Killed on its first delivery (the child exits); succeeds when run again."""
    note("start", self.request.id)
    if self.request.retries == 0:
        os._exit(9)
    return os.getpid()


@app.task
def grow(kib: int) -> int:
    _held.append(bytearray(kib * 1024))
    return os.getpid()


@app.task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    kinds = [type(a).__name__ for a in args]
    return {"args": list(args), "kwargs": kwargs, "kinds": kinds, "pid": os.getpid()}


@app.task
def returns_special() -> dict[str, Any]:
    return {"when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC), "id": uuid.UUID(int=7),
            "amount": decimal.Decimal("1.10"), "raw": b"\x00\xff"}


class TwoArgumentError(Exception):
    """Its __init__ takes two arguments: pickle cannot re-create it from its args."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@app.task
def raises_unpicklable() -> None:
    raise TwoArgumentError(42, "the answer")


@app.task
def raises_value_error() -> None:
    raise ValueError("plain")


@app.task(bind=True, max_retries=2)
def retries_once(self: Any) -> tuple[int, int]:
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return self.request.retries, os.getpid()


@app.task
async def async_sleeps(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


class Noted(Task[Any, Any]):
    """Notes each handler call, with the pid of the process that made it."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        note("on_success", task_id)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        note("on_failure", task_id)

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        note("after_return", task_id)


@app.task(base=Noted)
def handled(fail: bool) -> int:
    if fail:
        raise ValueError("as asked")
    return os.getpid()


@app.task(base=Noted)
def handled_dies() -> None:
    os._exit(5)


@app.task
def initialised_here() -> bool:
    """Whether worker_process_init ran in this process (a prefork child)."""
    return _initialised_in == [os.getpid()]


@app.task
def freezes() -> None:
    """Stops its own process: it never answers again (a hung child)."""
    os.kill(os.getpid(), signal.SIGSTOP)


@app.task(time_limit=2)
def freezes_with_limit() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


@app.task(acks_on_failure_or_timeout=False)
def dies_dead_lettered() -> None:
    os._exit(7)
