"""What the prefork pool and the supervisor need of the operating system, said once.

- :func:`die_with_parent`: a forked process asks the kernel to signal it when its parent
  dies (``PR_SET_PDEATHSIG`` through ctypes on Linux), so a SIGKILLed parent leaves no
  orphan behind; elsewhere :func:`watch_parent` polls ``getppid()`` instead.
- :func:`set_process_name`: the name in every log line (``%(processName)s``).
- :func:`rss_kib`: resident memory, as ``--max-memory-per-child`` counts it (KiB, as Celery).
- :func:`describe_exit`: a wait status as words ("signal 11 (SIGSEGV)", "exit code 3").
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any

logger = logging.getLogger("celeriac.worker")

_PR_SET_PDEATHSIG = 1
_PAGE_KIB = (os.sysconf("SC_PAGE_SIZE") // 1024) if hasattr(os, "sysconf") else 4


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded once, before any fork: a child then needs no dlopen() to ask for its signal.
_libc = _load_libc()


def die_with_parent(sig: int, expected_parent: int) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies.

    Returns False where that is not available (the caller then polls with
    :func:`watch_parent`). If the parent died before the request took effect (it is
    not ``expected_parent`` any more), the signal is sent now.
    """
    armed = False
    if _libc is not None:
        with contextlib.suppress(Exception):
            armed = _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    if os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)
    return armed


def watch_parent(sig: int, expected_parent: int, every_s: float = 1.0) -> None:
    """Poll for the parent's death on a daemon thread; send ``sig`` to this process then."""
    def watch() -> None:
        while os.getppid() == expected_parent:
            time.sleep(every_s)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="celeriac-parent-watch", daemon=True).start()


def set_process_name(name: str) -> None:
    """The name logging prints as ``%(processName)s`` for this process."""
    multiprocessing.current_process().name = name


def process_name() -> str:
    return multiprocessing.current_process().name


def rss_kib() -> int:
    """This process's resident set size in KiB (pages shared with the parent included)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_KIB
    except (OSError, ValueError, IndexError):
        import resource  # the peak, where /proc is missing

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak


def describe_exit(status: int | None) -> str:
    """A wait status (from ``os.waitpid``) as words."""
    if status is None:
        return "an unknown status (it could not be reaped)"
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit code {code}"
    return f"signal {-code} ({signal_name(-code)})"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_code_of(status: int) -> int:
    """The exit code a shell would show for a wait status (128 + n for signal n)."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def reset_signals(*, ignore: tuple[int, ...] = ()) -> None:
    """Default dispositions in a freshly forked process (a parent's Python handlers
    must not run in it), no wake-up fd, and ``ignore`` ignored."""
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD,
                signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN if sig in ignore else signal.SIG_DFL)
    with contextlib.suppress(AttributeError, OSError):
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
