"""``app.control``: Celery's remote control, spoken through the broker's control log.

A command is a ``control-request`` record appended to the control log (a small capped log
every server keeps apart from the event log: ``ControlStore.emit_control``); every running
worker reads that log a few times a second, runs the requests addressed to it and, when
the sender waits for answers, appends a ``control-reply`` (``ops.broadcast``,
``worker/control.py``). Workers never read task events to find requests, so polling costs
the same on a busy broker as on an idle one.

Revoking also writes the ids into the broker's revoked set, which every worker checks
before it starts a task, so a revoke reaches tasks that no worker holds yet, and workers
started later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import ops
from ._bridge import run_sync
from .events import Event
from .exceptions import stamping_not_available

if TYPE_CHECKING:
    from .app import Celery

Reply = list[dict[str, Any]]


def _names(destination: str | Iterable[str] | None) -> list[str] | None:
    if destination is None:
        return None
    return [destination] if isinstance(destination, str) else list(destination)


def flatten_reply(replies: Reply) -> dict[str, Any]:
    """``[{host: answer}, ...]`` as one ``{host: answer}`` dict."""
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    return merged


class Control:
    def __init__(self, app: Celery) -> None:
        self.app = app

    # --- the channel ------------------------------------------------------------------

    def broadcast(
        self, command: str, arguments: dict[str, Any] | None = None,
        destination: str | Iterable[str] | None = None, connection: Any = None, reply: bool = False,
        timeout: float = 1.0, limit: int | None = None, callback: Callable[[dict[str, Any]], Any] | None = None,
        channel: Any = None, pattern: str | None = None, matcher: str | None = None, **extra: Any,
    ) -> Reply | None:
        """Send ``command`` to the workers; with ``reply=True``, ``[{hostname: answer}, ...]``.

        ``destination`` names workers (else every one); ``pattern`` a glob of names
        (``matcher="pcre"``: a regex). The wait for replies ends after ``timeout``, after
        ``limit`` replies, or once every worker that is live (or named) has answered.
        """
        return run_sync(self.abroadcast(command, arguments, destination=destination, reply=reply, timeout=timeout,
                                        limit=limit, callback=callback, pattern=pattern, matcher=matcher, **extra))

    async def abroadcast(
        self, command: str, arguments: dict[str, Any] | None = None, *,
        destination: str | Iterable[str] | None = None, reply: bool = False, timeout: float = 1.0,
        limit: int | None = None, callback: Callable[[dict[str, Any]], Any] | None = None,
        pattern: str | None = None, matcher: str | None = None, **extra: Any,
    ) -> Reply | None:
        """The async twin of ``broadcast``."""
        extra.pop("connection", None)
        extra.pop("channel", None)
        return await ops.broadcast(self.app, command, {**(arguments or {}), **extra}, destination=_names(destination),
                                   pattern=pattern, matcher=matcher, reply=reply, timeout=timeout, limit=limit,
                                   callback=callback)

    def inspect(self, destination: str | Iterable[str] | None = None, timeout: float = 1.0,
                callback: Callable[[dict[str, Any]], Any] | None = None, connection: Any = None,
                app: Celery | None = None, limit: int | None = None, pattern: str | None = None,
                matcher: str | None = None) -> Inspect:
        return Inspect(destination=destination, timeout=timeout, callback=callback, app=app or self.app,
                       limit=limit, pattern=pattern, matcher=matcher)

    # --- commands ---------------------------------------------------------------------

    def ping(self, destination: str | Iterable[str] | None = None, timeout: float = 1.0, **kwargs: Any) -> Reply:
        """``[{hostname: {"ok": "pong"}}, ...]``, one per worker that answered within ``timeout``."""
        kwargs.setdefault("reply", True)
        return self.broadcast("ping", destination=destination, timeout=timeout, **kwargs) or []

    def revoke(self, task_id: str | Iterable[str], destination: str | Iterable[str] | None = None,
               terminate: bool = False, signal: str | int | None = None, **kwargs: Any) -> Reply | None:
        """Revoke tasks: not run if not started; stopped if running and ``terminate``.

        A running ``async def`` task is stopped by cancelling it; with the prefork pool the
        child running a task gets ``signal`` (``"SIGKILL"``, ``"KILL"``, ``9``...; default
        SIGTERM, then SIGKILL after a grace period); a thread-pool body runs on to its end
        (the worker logs why). ``signal`` reaches the workers that hear this request; one
        that finds the revoke at its next lease renewal instead uses SIGTERM.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        return run_sync(self.arevoke(ids, destination=destination, terminate=terminate, signal=signal, **kwargs))

    async def arevoke(self, task_ids: str | Iterable[str], destination: str | Iterable[str] | None = None,
                      terminate: bool = False, signal: str | int | None = None, **kwargs: Any) -> Reply | None:
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        await ops.revoke(self.app, ids, terminate=terminate)
        # Workers running one of them hear of it now (the revoked set is also checked at each
        # lease renewal), and remember the ids for inspect().revoked().
        return await self.abroadcast("revoke", {"task_id": ids, "terminate": terminate, "signal": signal},
                                     destination=destination, **kwargs)

    def revoke_by_stamped_headers(self, headers: dict[str, Any], destination: str | Iterable[str] | None = None,
                                  terminate: bool = False, signal: str | None = None, **kwargs: Any) -> Reply | None:
        """Celery's revoke by stamps: not available (raises ``NotAvailable``); revoke by id instead."""
        raise stamping_not_available("app.control.revoke_by_stamped_headers()")

    def terminate(self, task_id: str | Iterable[str], destination: str | Iterable[str] | None = None,
                  signal: str | int | None = None, **kwargs: Any) -> Reply | None:
        return self.revoke(task_id, destination=destination, terminate=True, signal=signal, **kwargs)

    def rate_limit(self, task_name: str, rate_limit: str | float | int | None,
                   destination: str | Iterable[str] | None = None, **kwargs: Any) -> Reply | None:
        """Set a task's rate limit (``"10/m"``; 0 or None: none) in running workers, from now on."""
        if isinstance(rate_limit, (int, float)) and rate_limit:
            rate_limit = str(rate_limit)
        return self.broadcast("rate_limit", {"task_name": task_name, "rate_limit": rate_limit},
                              destination=destination, **kwargs)

    def time_limit(self, task_name: str, soft: float | None = None, hard: float | None = None,
                   destination: str | Iterable[str] | None = None, **kwargs: Any) -> Reply | None:
        return self.broadcast("time_limit", {"task_name": task_name, "soft": soft, "hard": hard},
                              destination=destination, **kwargs)

    def add_consumer(self, queue: str, exchange: str | None = None, exchange_type: str = "direct",
                     routing_key: str | None = None, options: dict[str, Any] | None = None,
                     destination: str | Iterable[str] | None = None, **kwargs: Any) -> Reply | None:
        """Make workers reserve from ``queue`` too (the exchange arguments are accepted and unused)."""
        return self.broadcast("add_consumer", {"queue": queue}, destination=destination, **kwargs)

    def cancel_consumer(self, queue: str, destination: str | Iterable[str] | None = None,
                        **kwargs: Any) -> Reply | None:
        """Make workers stop reserving from ``queue``; the tasks they run from it finish."""
        return self.broadcast("cancel_consumer", {"queue": queue}, destination=destination, **kwargs)

    def shutdown(self, destination: str | Iterable[str] | None = None, **kwargs: Any) -> Reply | None:
        """Warm shutdown: workers stop reserving and finish what they run (``worker_shutdown_timeout``)."""
        return self.broadcast("shutdown", destination=destination, **kwargs)

    def purge(self, connection: Any = None) -> int:
        """Delete every waiting (queued or scheduled) message of every queue; return how many.
        Running tasks are left alone."""
        return run_sync(self.apurge())

    discard_all = purge

    async def apurge(self) -> int:
        depths = await ops.queue_depths(self.app)
        names = {self.app.settings.task_default_queue, *depths}
        return await ops.purge_queues(self.app, sorted(names))


class Inspect:
    """Celery's ``Inspect``: each method asks the workers and returns ``{hostname: answer}``,
    or None when none answered within ``timeout``. With ``destination`` given as one name
    (a string), the answer of that worker alone."""

    def __init__(self, destination: str | Iterable[str] | None = None, timeout: float = 1.0,
                 callback: Callable[[dict[str, Any]], Any] | None = None, connection: Any = None,
                 app: Celery | None = None, limit: int | None = None, pattern: str | None = None,
                 matcher: str | None = None) -> None:
        if app is None:
            from ._state import get_current_app

            app = get_current_app()
        self.app = app
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.limit = limit
        self.pattern = pattern
        self.matcher = matcher

    async def arequest(self, command: str, **arguments: Any) -> Any:
        """Send one inspect command and return the answers (the async form of every method)."""
        replies = await ops.broadcast(self.app, command, arguments, destination=_names(self.destination),
                                      pattern=self.pattern, matcher=self.matcher, reply=True, timeout=self.timeout,
                                      limit=self.limit, callback=self.callback)
        if not replies:
            return None
        by_node = flatten_reply(replies)
        if isinstance(self.destination, str):
            return by_node.get(self.destination)
        return by_node

    def _request(self, command: str, **arguments: Any) -> Any:
        return run_sync(self.arequest(command, **arguments))

    def ping(self, destination: str | Iterable[str] | None = None) -> dict[str, Any] | None:
        if destination is not None:
            self.destination = destination
        return self._request("ping")  # type: ignore[no-any-return]

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        """The tasks each worker runs: ``{hostname: [{"id", "name", "args", "kwargs", "time_start", ...}]}``."""
        return self._request("active", safe=safe)  # type: ignore[no-any-return]

    def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        """Always empty lists: a worker reserves only what it starts at once."""
        return self._request("reserved")  # type: ignore[no-any-return]

    def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        """Always empty lists: tasks with an eta wait in the broker, not in a worker."""
        return self._request("scheduled")  # type: ignore[no-any-return]

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems))  # type: ignore[no-any-return]

    registered_tasks = registered

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")  # type: ignore[no-any-return]

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")  # type: ignore[no-any-return]

    def query_task(self, *ids: str | Sequence[str]) -> dict[str, Any] | None:
        flat: list[str] = []
        for one in ids:
            flat.extend([one] if isinstance(one, str) else one)
        return self._request("query_task", ids=flat)  # type: ignore[no-any-return]

    def revoked(self) -> dict[str, Any] | None:
        return self._request("revoked")  # type: ignore[no-any-return]

    def clock(self) -> dict[str, Any] | None:
        return self._request("clock")  # type: ignore[no-any-return]

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        return self._request("conf", with_defaults=with_defaults)  # type: ignore[no-any-return]

    def report(self) -> dict[str, Any] | None:
        return self._request("report")  # type: ignore[no-any-return]

    # --- heartbeats (no request sent) -------------------------------------------------

    async def aworkers(self) -> dict[str, Event]:
        """The newest heartbeat of each worker seen alive within three heartbeat periods."""
        names = _names(self.destination)
        return await ops.live_workers(self.app, set(names) if names is not None else None)

    def workers(self) -> dict[str, Event]:
        return run_sync(self.aworkers())
