"""``celeriac worker --processes K``: K worker processes under one supervisor.

One asyncio worker process is bound by its own CPU (decoding, dispatch, acks); K of them
on K cores are the simplest way past that. The supervisor imports the app once,
``gc.freeze()``s it and forks the K workers, which share those pages copy-on-write
(Sidekiq Enterprise's swarm, gunicorn's ``preload``). Then it only watches:

- a worker that exits while the supervisor runs is started again, after a pause that
  doubles while it keeps dying young (``Backoff``: from ``RESTART_BASE_S`` up to
  ``RESTART_CAP_S``); one that ran ``STABLE_S`` starts again at once. After
  ``FATAL_QUICK_EXITS`` failures in a row, each within ``STABLE_S`` of its start, the
  supervisor gives up: it stops the others and exits with that worker's code.
- SIGTERM and SIGINT are passed to every worker (a second one too: their cold shutdown),
  SIGQUIT as well; the supervisor waits for all of them and exits 0 only if each ended
  cleanly, else with the first failure's code (128 + n for a signal n).
- Each worker asks the kernel for SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``;
  elsewhere it polls ``getppid()``), so a SIGKILLed supervisor leaves workers that shut
  down warmly (releasing their leases), never orphans.
- Each worker is in a process group of its own: a signal to the supervisor's group
  (``kill -TERM -PGID``, a terminal's Ctrl-C) reaches the supervisor alone, which passes
  it on exactly once; otherwise each worker would count it twice and shut down cold.
- Log lines carry the process's name (``Worker-1``, ``Worker-1/ForkPoolWorker-2``), and
  every worker writes to the supervisor's stream.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..backoff import Backoff
from . import processes

logger = logging.getLogger("celeriac.worker")

RESTART_BASE_S = 0.5
RESTART_CAP_S = 30.0
STABLE_S = 30.0  # a worker that ran this long before it exited was not failing to start
FATAL_QUICK_EXITS = 5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _Slot:
    index: int
    backoff: Backoff
    pid: int | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # monotonic time of the next start, if one is due
    quick_exits: int = 0
    last_code: int = 0
    done: bool = False  # ended for good (stopping, or --until-empty)


class Supervisor:
    """Fork ``count`` workers, each running ``run_worker(index)`` (its exit code), and keep them."""

    def __init__(self, count: int, run_worker: Callable[[int], int], *, until_empty: bool = False) -> None:
        self.count = count
        self.run_worker = run_worker
        self.until_empty = until_empty
        self.stopping = False
        self.fatal_code: int | None = None
        self._received: list[int] = []
        self._slots = {
            index: _Slot(index, Backoff(logger, f"worker process {index} keeps exiting",
                                        f"worker process {index} is running again",
                                        base_s=RESTART_BASE_S, cap_s=RESTART_CAP_S))
            for index in range(1, count + 1)
        }
        self._pids: dict[int, _Slot] = {}
        self._inherited: tuple[int, ...] = ()  # the supervisor's own fds, closed in each worker

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        processes.set_process_name("Supervisor")
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self._inherited = (wake_r, wake_w)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handled = (*STOP_SIGNALS, signal.SIGQUIT, signal.SIGCHLD)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            gc.collect()
            gc.freeze()  # the app imported once, its pages shared by every worker
            for slot in self._slots.values():
                self._start(slot)
            logger.info("supervising %d worker processes", self.count)
            while not self._finished():
                select.select([wake_r], [], [], self._next_wait())
                with contextlib.suppress(OSError):
                    os.read(wake_r, 4096)
                self._handle_signals()
                self._reap()
                self._start_due()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
        return self._exit_code()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._received.append(signum)  # acted on in the loop, not in the handler

    def _handle_signals(self) -> None:
        received, self._received = self._received, []
        for signum in received:
            if signum == signal.SIGCHLD:
                continue
            if not self.stopping:
                logger.info("%s received: stopping %d worker processes (warm shutdown; send it again "
                            "for a cold one)", processes.signal_name(signum), len(self._pids))
            self._stop(signum)

    def _stop(self, signum: int) -> None:
        self.stopping = True
        for slot in self._slots.values():
            slot.restart_at = None
            if slot.pid is None:
                slot.done = True
        for pid in list(self._pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _finished(self) -> bool:
        return all(slot.done for slot in self._slots.values())

    def _next_wait(self) -> float:
        due = [slot.restart_at for slot in self._slots.values() if slot.restart_at is not None]
        if not due:
            return 1.0
        return max(0.0, min(1.0, min(due) - time.monotonic()))

    # --- starting and reaping ---------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        supervisor_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            logger.error("cannot fork worker process %d (%s)", slot.index, exc)
            slot.restart_at = time.monotonic() + slot.backoff.failed(exc)
            return
        if pid == 0:
            code = 1
            try:
                code = self._child(slot.index, supervisor_pid)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("worker process %d failed", slot.index)
            finally:
                _leave(code)
        slot.pid, slot.started_at = pid, time.monotonic()
        self._pids[pid] = slot
        logger.info("worker process %d started (pid %d)", slot.index, pid)

    def _child(self, index: int, supervisor_pid: int) -> int:
        processes.reset_signals()
        for fd in self._inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        processes.set_process_name(f"Worker-{index}")
        if not processes.die_with_parent(signal.SIGTERM, supervisor_pid):
            processes.watch_parent(signal.SIGTERM, supervisor_pid)
        return self.run_worker(index)

    def _reap(self) -> None:
        while self._pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self._pids.pop(pid, None)
            if slot is not None:
                self._exited(slot, pid, status)

    def _exited(self, slot: _Slot, pid: int, status: int) -> None:
        code = processes.exit_code_of(status)
        ran_s = time.monotonic() - slot.started_at
        slot.pid = None
        slot.last_code = code
        how = processes.describe_exit(status)
        if self.stopping or (self.until_empty and code == 0):
            slot.done = True
            log = logger.info if code == 0 else logger.warning
            log("worker process %d (pid %d) exited: %s", slot.index, pid, how)
            return
        if ran_s >= STABLE_S or code == 0:
            slot.quick_exits = 0
            slot.backoff.succeeded()
            delay = 0.0
        else:
            slot.quick_exits += 1
            delay = slot.backoff.failed(RuntimeError(how))
        if slot.quick_exits >= FATAL_QUICK_EXITS:
            logger.critical("worker process %d exited %d times in a row within %.0fs of starting (last: %s); "
                            "stopping the others", slot.index, slot.quick_exits, STABLE_S, how)
            self.fatal_code = code or 1
            slot.done = True
            self._stop(signal.SIGTERM)
            return
        logger.error("worker process %d (pid %d) exited after %.1fs: %s; starting it again in %.1fs",
                     slot.index, pid, ran_s, how, delay)
        slot.restart_at = time.monotonic() + delay

    def _start_due(self) -> None:
        if self.stopping:
            return
        now = time.monotonic()
        for slot in self._slots.values():
            if slot.restart_at is not None and slot.restart_at <= now and slot.pid is None:
                self._start(slot)

    def _exit_code(self) -> int:
        if self.fatal_code is not None:
            return self.fatal_code
        for slot in self._slots.values():
            if slot.last_code:
                return slot.last_code
        return 0


def _leave(code: int) -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)


def process_count(value: str | None) -> int:
    """``--processes``: a positive integer, or ``auto`` (one per CPU)."""
    if value is None:
        return 1
    if value.strip().lower() == "auto":
        from .pool import cpu_count

        return cpu_count()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--processes must be a positive integer or 'auto', got {value!r}")
    return count
