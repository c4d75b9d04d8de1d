"""The worker's side of remote control: read requests from the control log, act, reply.

A worker notes the newest control record's id when it starts and reads the control log
after it every ``POLL_S`` on its own event loop (one ``read_control`` call, answered with
nothing, when nothing is new: the control log holds requests and replies only, never task
events, so the poll costs the same however busy the broker is). For each
request addressed to it (``ops.is_addressed_to``) it runs the command below of that name
and, when the sender waits for replies, appends a ``control-reply`` with the request's id
(``ops.reply_control``). The answers have the shapes of Celery's remote-control commands.

Inspect commands read what the worker keeps here: the tasks it runs (with their
envelopes, for ``active()``), how many of each name it started, the ids it heard revoked.
Control commands change the worker: ``rate_limit``/``time_limit`` set the task's
attribute (what Celery's worker does), ``add_consumer``/``cancel_consumer`` change the
queues the fetch loop reserves from, ``shutdown`` asks for a warm shutdown, and
``revoke(terminate=True)`` cancels a running task now rather than at the lease keeper's
next renewal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import signal
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import __version__, ops
from .._state import shared_tasks
from ..config import DEFAULTS
from ..message import Delivery, Envelope
from ..servers import hide_password
from .limits import parse_rate

if TYPE_CHECKING:
    from .loop import Worker

logger = logging.getLogger("celeriac.worker")

# How often the worker reads the control log for requests. Celery's inspect() waits one
# second by default, which this leaves room for (a read, a reply written, the client's read).
POLL_S = 0.2
# How many revoked ids a worker remembers for ``inspect().revoked()`` (the broker's
# revoked set, which decides what runs, keeps every id for ``revoked_ttl_seconds``).
REVOKED_KEPT = 50_000
DEFAULT_TASK_INFO_ITEMS = ("exchange", "routing_key", "rate_limit")


def ok(value: Any) -> dict[str, Any]:
    return {"ok": value}


def nok(value: Any) -> dict[str, Any]:
    return {"error": value}


class RemoteControl:
    """What one worker answers and does when asked through the control log."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.started_at = time.time()
        self.clock = 0  # counts requests handled and tasks started, for inspect().clock()
        self.active: dict[str, tuple[Delivery, Envelope, float]] = {}
        self.totals: Counter[str] = Counter()
        self.revoked: OrderedDict[str, None] = OrderedDict()
        self._cursor: str | None = None
        self._has_cursor = False
        self.commands: dict[str, Callable[..., Any]] = {
            "ping": self.ping, "active": self.active_tasks, "reserved": self.reserved,
            "scheduled": self.scheduled, "registered": self.registered, "stats": self.stats,
            "active_queues": self.active_queues, "query_task": self.query_task, "revoked": self.revoked_ids,
            "clock": self.clock_value, "conf": self.conf, "report": self.report,
            "rate_limit": self.rate_limit, "time_limit": self.time_limit, "shutdown": self.shutdown,
            "add_consumer": self.add_consumer, "cancel_consumer": self.cancel_consumer,
            "revoke": self.revoke, "terminate": self.terminate,
        }
        # Celery's old names for the same commands.
        for alias, name in (("dump_active", "active"), ("dump_reserved", "reserved"),
                            ("dump_schedule", "scheduled"), ("dump_tasks", "registered"),
                            ("registered_tasks", "registered"), ("dump_revoked", "revoked"),
                            ("dump_conf", "conf")):
            self.commands[alias] = self.commands[name]

    # --- what the worker's loop tells it ----------------------------------------------

    def task_started(self, delivery: Delivery, envelope: Envelope) -> None:
        self.active[delivery.task_id] = (delivery, envelope, time.time())
        self.totals[envelope.task] += 1
        self.clock += 1

    def task_ended(self, task_id: str) -> None:
        self.active.pop(task_id, None)

    # --- the request loop -------------------------------------------------------------

    async def start(self) -> None:
        """Note where the control log ends now: requests written before this worker started are not for it."""
        try:
            self._cursor = await ops.control_cursor(self.worker.app)
            self._has_cursor = True
        except Exception as exc:  # the loop tries again
            logger.debug("remote control: could not read the control log yet (%s)", exc)

    async def run(self, stopping: asyncio.Event) -> None:
        """Answer requests until ``stopping`` is set; a failed read is logged and tried again."""
        failing = False
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), POLL_S)
                return
            except TimeoutError:
                pass
            try:
                if not self._has_cursor:
                    await self.start()
                    continue
                requests, self._cursor = await ops.control_requests(self.worker.app, self._cursor)
                for request in requests:
                    if ops.is_addressed_to(request, self.worker.hostname):
                        await self.handle(request)
                if failing:
                    logger.info("remote control: reading the control log works again")
                failing = False
            except Exception as exc:
                if not failing:
                    logger.warning("remote control: cannot read the control log (%s); retrying", exc)
                failing = True

    async def handle(self, request: ops.ControlMessage) -> None:
        self.clock += 1
        answer = self.run_command(request.command or "", request.arguments)
        if request.reply:
            await ops.reply_control(self.worker.app, self.worker.hostname, request.request_id, answer)

    def run_command(self, command: str, arguments: dict[str, Any]) -> Any:
        handler = self.commands.get(command)
        if handler is None:
            logger.warning("remote control: unknown command %r", command)
            return nok(f"unknown command {command!r}")
        try:
            return handler(**arguments)
        except Exception as exc:
            logger.exception("remote control: command %r failed", command)
            return nok(f"error running command {command!r}: {exc!r}")

    # --- inspect ----------------------------------------------------------------------

    def ping(self, **_: Any) -> dict[str, Any]:
        return ok("pong")

    def _info(self, delivery: Delivery, envelope: Envelope, started: float | None) -> dict[str, Any]:
        """One task as Celery's ``Request.info()`` shows it."""
        return {
            "id": envelope.id, "name": envelope.task, "args": envelope.args, "kwargs": envelope.kwargs,
            "type": envelope.task, "hostname": self.worker.hostname, "time_start": started,
            # acknowledged once it finishes (always "late"), so never while it runs
            "acknowledged": False,
            "delivery_info": {"exchange": "", "routing_key": envelope.queue, "priority": envelope.priority,
                              "redelivered": delivery.fencing_token > 1},
            "worker_pid": os.getpid(),
        }

    def active_tasks(self, safe: Any = None, **_: Any) -> list[dict[str, Any]]:
        return [self._info(d, e, started) for d, e, started in self.active.values()]

    def reserved(self, **_: Any) -> list[dict[str, Any]]:
        # A worker reserves only as many messages as it has free slots and starts each at
        # once: none waits inside it.
        return []

    def scheduled(self, **_: Any) -> list[dict[str, Any]]:
        # Messages with an eta wait in the broker's schedule, not in a worker.
        return []

    def registered(self, taskinfoitems: list[str] | None = None, builtins: bool = False,
                   **_: Any) -> list[str]:
        app = self.worker.app
        tasks = {**shared_tasks, **app.tasks}
        items = taskinfoitems or DEFAULT_TASK_INFO_ITEMS
        shown = []
        for name in sorted(tasks):
            if name.startswith("celery.") and not builtins:
                continue
            task = tasks[name]
            fields = [f"{item}={getattr(task, item)}" for item in items if getattr(task, item, None) is not None]
            shown.append(f"{name} [{' '.join(fields)}]" if fields else name)
        return shown

    def stats(self, **_: Any) -> dict[str, Any]:
        worker = self.worker
        url = worker.broker.url
        scheme = url.split(":", 1)[0]
        return {
            "broker": {"transport": scheme, "url": hide_password(url)},
            "clock": str(self.clock),
            "pid": os.getpid(),
            "pool": {
                "implementation": worker.pool, "max-concurrency": worker.concurrency,
                "processes": list(getattr(worker._pool, "pids", None) or [os.getpid()]),
                "timeouts": [worker.default_soft_time_limit or 0, worker.default_time_limit or 0],
            },
            "prefetch_count": worker.concurrency,
            "rusage": _rusage(),
            "total": dict(self.totals),
            "uptime": int(time.time() - self.started_at),
            "lease_seconds": worker.lease_s,
            "queues": list(worker.queues),
        }

    def active_queues(self, **_: Any) -> list[dict[str, Any]]:
        return [_queue_info(name) for name in self.worker.queues]

    def query_task(self, ids: list[str] | str | None = None, **_: Any) -> dict[str, Any]:
        wanted = [ids] if isinstance(ids, str) else list(ids or [])
        return {task_id: ["active", self._info(*self.active[task_id])] for task_id in wanted
                if task_id in self.active}

    def revoked_ids(self, **_: Any) -> list[str]:
        return list(self.revoked)

    def clock_value(self, **_: Any) -> dict[str, Any]:
        return {"clock": self.clock}

    def conf(self, with_defaults: bool = False, **_: Any) -> dict[str, Any]:
        conf = self.worker.app.conf
        table = {**DEFAULTS, **conf} if with_defaults else dict(conf)
        return {key: _shown_setting(value) for key, value in table.items()
                if isinstance(key, str) and not key.startswith("__")}

    def report(self, **_: Any) -> dict[str, Any]:
        return ok(f"celeriac {__version__}; Python {platform.python_version()} ({sys.implementation.name}); "
                  f"{platform.platform()}; broker {hide_password(self.worker.broker.url)}; "
                  f"pool {self.worker.pool} x{self.worker.concurrency}")

    # --- control ----------------------------------------------------------------------

    def _task(self, name: str) -> Any:
        return self.worker.app.tasks.get(name) or shared_tasks.get(name)

    def rate_limit(self, task_name: str, rate_limit: str | float | int | None = None, **_: Any) -> dict[str, Any]:
        try:
            per_second = parse_rate(rate_limit)
        except Exception as exc:
            return nok(f"Invalid rate limit string: {exc!r}")
        task = self._task(task_name)
        if task is None:
            logger.error("rate limit asked for an unknown task %s", task_name)
            return nok("unknown task")
        task.rate_limit = str(rate_limit) if per_second is not None else None
        if per_second is None:
            logger.info("rate limits disabled for tasks of type %s", task_name)
            return ok("rate limit disabled successfully")
        logger.info("new rate limit for tasks of type %s: %s", task_name, rate_limit)
        return ok("new rate limit set successfully")

    def time_limit(self, task_name: str, soft: float | None = None, hard: float | None = None,
                   **_: Any) -> dict[str, Any]:
        task = self._task(task_name)
        if task is None:
            logger.error("time limits asked for an unknown task %s", task_name)
            return nok("unknown task")
        task.soft_time_limit = soft
        task.time_limit = hard
        logger.info("new time limits for tasks of type %s: soft=%s hard=%s", task_name, soft, hard)
        return ok("time limits set successfully")

    def shutdown(self, msg: str = "Got shutdown from remote", **_: Any) -> dict[str, Any]:
        logger.warning("%s: warm shutdown", msg)
        self.worker.stop()
        return ok("shutting down")

    def add_consumer(self, queue: str, **_: Any) -> dict[str, Any]:
        if queue not in self.worker.queues:
            self.worker.queues = [*self.worker.queues, queue]
            logger.info("now consuming from %s", queue)
        return ok(f"add consumer {queue}")

    def cancel_consumer(self, queue: str, **_: Any) -> dict[str, Any]:
        self.worker.queues = [name for name in self.worker.queues if name != queue]
        logger.info("no longer consuming from %s", queue)
        return ok(f"no longer consuming from {queue}")

    def revoke(self, task_id: list[str] | str, terminate: bool = False, signal: str | int | None = None,
               **_: Any) -> dict[str, Any]:
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        for one in ids:
            self.revoked[one] = None
            self.revoked.move_to_end(one)
        while len(self.revoked) > REVOKED_KEPT:
            self.revoked.popitem(last=False)
        if not terminate:
            return ok(f"tasks {', '.join(ids)} flagged as revoked")
        try:
            signum = signal_number(signal)
        except ValueError as exc:
            return nok(str(exc))
        running = [one for one in ids if one in self.worker._running]
        if not running:
            return ok("terminate: tasks unknown")
        self.worker._on_revoked(dict.fromkeys(running, True), signum=signum)
        stopped = [one for one in running if self.worker._cancel_reasons.get(one) == "revoked"]
        kept = [one for one in running if one not in stopped]
        text = f"terminate: {', '.join(stopped)}" if stopped else "terminate: none stopped"
        if kept:
            text += f" (still running, their pool cannot stop them: {', '.join(kept)})"
        return ok(text)

    def terminate(self, task_id: list[str] | str, signal: str | None = None, **_: Any) -> dict[str, Any]:
        return self.revoke(task_id, terminate=True, signal=signal)


def signal_number(value: str | int | None) -> int | None:
    """The signal ``revoke(signal=...)`` names, as Celery reads it: ``"SIGKILL"``, ``"KILL"``,
    ``"kill"``, ``9`` or ``"9"``; None for None. An unknown name raises ``ValueError``."""
    if value is None or value == "":
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    name = value.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(getattr(signal, name))
    except AttributeError:
        raise ValueError(f"unknown signal {value!r} for revoke(signal=...)") from None


def _queue_info(name: str) -> dict[str, Any]:
    """A queue as Celery's ``active_queues()`` shows one (kombu's ``Queue.as_dict``)."""
    return {
        "name": name, "routing_key": name, "alias": None, "auto_delete": False, "durable": True,
        "exclusive": False, "no_ack": False, "no_declare": None, "expires": None, "message_ttl": None,
        "max_length": None, "max_length_bytes": None, "max_priority": None, "queue_arguments": None,
        "binding_arguments": None, "consumer_arguments": None, "bindings": [],
        "exchange": {"name": name, "type": "direct", "durable": True, "auto_delete": False, "arguments": None,
                     "delivery_mode": None, "no_declare": False, "passive": False},
    }


def _shown_setting(value: Any) -> Any:
    if isinstance(value, str) and "://" in value:
        return hide_password(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return list(value)
    return repr(value)


def _rusage() -> dict[str, Any] | str:
    try:
        import resource
    except ImportError:
        return "N/A"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {name: getattr(usage, f"ru_{name}") for name in (
        "utime", "stime", "maxrss", "ixrss", "idrss", "isrss", "minflt", "majflt", "nswap", "inblock",
        "oublock", "msgsnd", "msgrcv", "nsignals", "nvcsw", "nivcsw")}
