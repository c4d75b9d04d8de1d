"""The worker's run loop: reserve by free slot, dispatch, finish, shut down.

One asyncio loop per process. ``async def`` tasks run on it; sync tasks run in the pool
(``pool.py``: as many threads as the concurrency). The worker reserves only as many
messages as it has free slots, in one broker call, so a slow task never holds fast ones
in a prefetch buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from .. import signals
from ..backoff import Backoff
from ..context import Request
from ..events import (
    TASK_FAILED,
    TASK_REJECTED,
    TASK_RETRIED,
    TASK_REVOKED,
    TASK_SUCCEEDED,
    WORKER_HEARTBEAT,
    WORKER_OFFLINE,
    WORKER_ONLINE,
    outcome_event,
    received_event,
    started_event,
    task_event,
    worker_event,
)
from ..exceptions import NotRegistered, Reject, SerializationError
from ..execution import ExceptionInfo, Outcome, execute
from ..message import (
    FAILURE,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
    Delivery,
    Envelope,
    ResultRecord,
    decode_envelope,
    encode_envelope,
    now_ms,
)
from ..serialization import check_args, dumps_pickle, safe_text, to_wire
from ..servers import hide_password
from ..servers.contracts import lost_record
from ..task import Task, outcome_record
from . import replaced
from .completion import CompletionBuffer
from .control import RemoteControl
from .followups import FollowUps
from .lease import LeaseKeeper
from .limits import bucket_capacity, parse_rate
from .pool import make_pool

if TYPE_CHECKING:
    from ..app import Celery

logger = logging.getLogger("celeriac.worker")

# How long one idle reserve may wait for a message before the fetch loop calls again.
# A stop waits for the reserve in flight (cutting a blocking reserve short could leave a
# message leased to a reply nobody reads, back only when its lease runs out), so this
# bounds how long an idle worker takes to exit on SIGTERM: Django's Tasks framework
# expects an idle worker gone within 0.5 s. Each window costs one broker call when idle.
IDLE_RESERVE_TIMEOUT_S = 0.2
# A warm shutdown waits this long, after running tasks end, for the last acks and
# results to be written (and as long again for the rest of its clean-up), so it ends
# within its timeout plus a few seconds even when the broker is gone.
SHUTDOWN_FLUSH_TIMEOUT_S = 5.0
EXIT_SOFTWARE = 70  # sysexits.h EX_SOFTWARE: a part of the worker failed
OUTCOME_EVENTS = {"success": TASK_SUCCEEDED, "failure": TASK_FAILED, "retry": TASK_RETRIED,
                  "ignore": TASK_SUCCEEDED, "reject": TASK_REJECTED}
# The per-minute count (celeriac/stats.py) each outcome adds to.
OUTCOME_COUNTS = {"success": "succeeded", "failure": "failed", "retry": "retried", "ignore": "succeeded",
                  "reject": "failed"}
BROKER_RETRY_MAX_S = 10.0
TRACEBACK_LOG_LIMIT = 20_000  # characters of a failed task's traceback in the worker's log


def expand_hostname(pattern: str | None) -> str:
    host = socket.gethostname()
    if not pattern:
        return f"celeriac@{host}"
    name, _, domain = host.partition(".")
    return pattern.replace("%h", host).replace("%n", name).replace("%d", domain).replace("%%", "%")


class Worker:
    def __init__(
        self, app: Celery, *, queues: Sequence[str] | None = None, concurrency: int | None = None,
        pool: str | None = None, hostname: str | None = None, lease_s: float | None = None,
        shutdown_timeout_s: float | None = None, until_empty: bool = False,
        handle_signals: bool = True, pool_options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        conf = app.settings
        self.queues = list(queues or [conf.task_default_queue])
        # prefork forks its fork server here, before run() starts threads (pool_options: its limits).
        self._pool = make_pool(pool or conf.worker_pool, concurrency or None, app=app, **(pool_options or {}))
        self.pool = self._pool.name
        self.concurrency = self._pool.concurrency
        self.hostname = expand_hostname(hostname)
        self.worker_id = f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = float(lease_s or conf.broker_lease_seconds)
        self.shutdown_timeout_s = float(
            conf.worker_shutdown_timeout if shutdown_timeout_s is None else shutdown_timeout_s
        )
        self.until_empty = until_empty
        self.handle_signals = handle_signals
        self.accept_content = frozenset(conf.accept_content)
        self.track_started = bool(conf.task_track_started)
        self.result_extended = bool(conf.result_extended)
        self.default_time_limit = conf.task_time_limit
        self.default_soft_time_limit = conf.task_soft_time_limit
        self.sends_events = bool(conf.worker_send_task_events)
        self.heartbeat_s = float(conf.worker_heartbeat_seconds)

        self._running: dict[str, asyncio.Task[None]] = {}
        # Tasks whose body ended and whose ending (follow-ups, results, ack) is being written:
        # no longer holding a slot, but a drain or a shutdown waits for them.
        self._finishing: set[asyncio.Task[Any]] = set()
        self._cancel_reasons: dict[str, str] = {}
        self._slot_free = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._signals_seen = 0
        self.abandoned_threads = False  # some pool threads still ran at the end (worker/cli.py exits without them)
        self.ready = threading.Event()  # set once the worker is reserving
        self.tasks_done = 0
        self.exit_code = 0  # non-zero once a part of the worker failed and stopped it
        self._cleanup_deadline = 0.0  # loop time by which shutdown's clean-up steps give up
        self.remote = RemoteControl(self)  # answers app.control's requests (worker/control.py)

    # --- entry ----------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._install_signal_handlers(loop)
        _send_start_signals(self)
        starting = getattr(self._pool, "start", None)  # prefork: its first children, and a watch on them
        if starting is not None:
            self._supervise(await starting(), "the prefork pool")
        clients = await self.app.clients()
        self.broker, self.store = clients.broker, clients.store
        self.control, self.admin = clients.control, clients.admin
        self.keeper = LeaseKeeper(
            self.app.new_clients, self.lease_s,
            on_lost=lambda ids, why: _call_soon(loop, self._on_leases_lost, ids, why),
            on_revoked=lambda found: _call_soon(loop, self._on_revoked, found),
            on_crash=lambda exc: _call_soon(loop, self._part_failed, "the lease keeper", exc),
            heartbeat=self._heartbeat if self.sends_events else None, heartbeat_s=self.heartbeat_s,
        )
        self.keeper.start()
        self.completion = CompletionBuffer(self.broker, self.control, self.store, self.keeper,
                                           clients.acks_carry_results)
        self.followups = FollowUps(self.app, self.store)
        self._supervise(self.completion.start(), "the ack and result flusher")
        # The ready line is a banner, printed whatever the log level (as Celery's is):
        # scripts and tests wait for it. One write with its newline: print() writes the text
        # and the newline apart, and the workers of --processes share one stream.
        sys.stderr.write(
            f"{self.hostname} ready: queues {','.join(self.queues)}, concurrency {self.concurrency}, "
            f"pool {self.pool}, broker {hide_password(self.broker.url)}, lease {self.lease_s:.0f}s\n"
        )
        sys.stderr.flush()
        if self.sends_events:
            await self.control.emit_events([self._worker_event(WORKER_ONLINE)])
        await self.remote.start()  # requests sent from here on are for this worker
        signals.worker_ready.send(sender=self)
        self.ready.set()
        self._remote_task = asyncio.create_task(self.remote.run(self._stop_requested), name="celeriac-remote")
        fetcher = self._supervise(asyncio.create_task(self._fetch_loop(), name="celeriac-fetcher"),
                                  "the fetch loop")
        try:
            await self._stop_requested.wait()
        finally:
            await self._shutdown(fetcher)

    def stop(self) -> None:
        """Ask for a warm shutdown (what SIGTERM does)."""
        self._stop_requested.set()
        self._slot_free.set()

    # --- supervision ----------------------------------------------------------------

    def _supervise(self, part: asyncio.Task[None], what: str) -> asyncio.Task[None]:
        """Stop the worker, with a non-zero exit, if ``part`` ends while it should run.

        A worker whose fetch loop died would otherwise stay alive, answer pings and hold
        its leases while never taking another task.
        """
        def ended(done: asyncio.Task[None]) -> None:
            if done.cancelled():
                if not self._stop_requested.is_set():
                    self._part_failed(what, None)
                return
            exc = done.exception()
            if exc is not None or not self._stop_requested.is_set():
                self._part_failed(what, exc)

        part.add_done_callback(ended)
        return part

    def _part_failed(self, what: str, exc: BaseException | None) -> None:
        if exc is None:
            logger.critical("%s stopped unexpectedly; stopping the worker (exit code %d) so that its "
                            "supervisor restarts it", what, EXIT_SOFTWARE)
        else:
            logger.critical("%s failed; stopping the worker (exit code %d) so that its supervisor "
                            "restarts it", what, EXIT_SOFTWARE, exc_info=exc)
        self.exit_code = EXIT_SOFTWARE
        self.stop()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGQUIT, self._on_cold_signal)

    def _on_signal(self, sig: int) -> None:
        self._signals_seen += 1
        self._stop_signal = signal.Signals(sig).name
        if self._signals_seen == 1:
            logger.info("%s received: warm shutdown (running tasks get %.0fs to finish; send it "
                        "again to stop them now)", signal.Signals(sig).name, self.shutdown_timeout_s)
            self.stop()
        else:
            self._on_cold_signal()

    def _on_cold_signal(self) -> None:
        logger.warning("cold shutdown: cancelling running tasks and releasing their leases")
        self._force.set()
        self.stop()

    # --- reserving ------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        lease_ms = int(self.lease_s * 1000)
        reserving_backoff = Backoff(logger, "cannot reserve from the broker", "broker reachable again",
                                    base_s=0.2, cap_s=BROKER_RETRY_MAX_S, level=logging.ERROR)
        while not self._stop_requested.is_set():
            free = self.concurrency - len(self._running)
            if not self.queues:  # every queue cancelled (cancel_consumer): wait for one to be added
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), IDLE_RESERVE_TIMEOUT_S)
                continue
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            # Awaited here, not raced against a stop request: the reserve waits at most
            # IDLE_RESERVE_TIMEOUT_S, and on an idle worker's wake-up each task and wait
            # between the notice and the run is a hop of the event loop.
            try:
                deliveries = await self.broker.reserve(
                    self.queues, free, lease_ms=lease_ms, worker_id=self.worker_id,
                    timeout_s=0.05 if self.until_empty else IDLE_RESERVE_TIMEOUT_S,
                )
                is_drained = (not deliveries and self.until_empty and not self._running
                              and not self._finishing and not await self._has_waiting())
            except Exception as exc:
                if self._stop_requested.is_set():
                    return
                await asyncio.sleep(reserving_backoff.failed(exc))
                continue
            reserving_backoff.succeeded()
            if self._stop_requested.is_set():
                await self._release_unstarted(deliveries)  # stopping: hand back what it got
                return
            if deliveries:
                await self._dispatch(deliveries)  # never raises: each message fails alone
                # The tasks just made take their first step before the next reserve is
                # sent: on an idle worker that send was ~0.1 ms between a message and its start.
                await asyncio.sleep(0)
            elif is_drained:
                await self.completion.drain()
                self.stop()

    async def _has_waiting(self) -> bool:
        """Whether our queues hold queued or scheduled messages (for --until-empty)."""
        depths = await self.admin.queue_depths()
        return any(depths.get(queue) for queue in self.queues)

    async def _release_unstarted(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        try:
            await self.broker.release(deliveries)
        except Exception as exc:
            logger.error("could not hand back %d reserved message(s) at shutdown (%s); they come back "
                         "when their leases run out", len(deliveries), exc)

    async def _dispatch(self, deliveries: list[Delivery]) -> None:
        revoked = await self._revoked_among(deliveries)
        now = now_ms()
        for delivery in deliveries:
            try:
                envelope, task = self._decode(delivery)
            except Exception as exc:
                # Whatever is wrong with one message, it alone goes to the dead-letter
                # queue and the worker takes the next.
                await self._reject_undecodable(delivery, exc)
                continue
            try:
                await self._start(delivery, envelope, task, revoked, now)
            except Exception as exc:
                logger.exception("could not start task %s[%s]; handing it back to its queue",
                                 envelope.task, envelope.id)
                await self._hand_back(delivery, exc)

    async def _revoked_among(self, deliveries: list[Delivery]) -> dict[str, bool]:
        try:
            unchecked = [d.task_id for d in deliveries if d.is_revoked is None]
            revoked = {d.task_id: False for d in deliveries if d.is_revoked}
            if unchecked:
                revoked.update(await self.control.revoked_among(unchecked))
        except Exception as exc:
            # The broker went away after handing these out. Run them: their acks and
            # results wait in the completion buffer until it is back.
            logger.warning("could not read revoked ids (%s); running %d tasks unchecked", exc, len(deliveries))
            return {}
        return revoked

    def _decode(self, delivery: Delivery) -> tuple[Envelope, Task[Any, Any]]:
        envelope = decode_envelope(delivery.body, self.accept_content)
        if envelope.id != delivery.task_id:
            raise SerializationError(
                f"the message names task id {safe_text(repr(envelope.id))} but was stored as "
                f"{safe_text(repr(delivery.task_id))}"
            )
        return envelope, self.app.get_task(envelope.task)

    async def _reject_undecodable(self, delivery: Delivery, exc: Exception) -> None:
        _send_unusable_message_signal(self, delivery, exc, self.accept_content)
        if isinstance(exc, (SerializationError, NotRegistered)):
            reason = safe_text(str(exc) if not isinstance(exc, NotRegistered) else exc.args[0])
            logger.error("message %s sent to the dead-letter queue: %s", safe_text(delivery.task_id), reason)
        else:
            reason = f"the worker could not read this message: {safe_text(repr(exc))}"
            logger.exception("message %s sent to the dead-letter queue: %s", safe_text(delivery.task_id), reason)
        try:
            await self._dead_letter(delivery, reason)
        except Exception as again:
            logger.error("could not dead-letter %s (%s); its lease will run out, and after "
                         "max_deliveries it is dead-lettered by the broker", safe_text(delivery.task_id), again)

    async def _hand_back(self, delivery: Delivery, exc: Exception) -> None:
        self.keeper.drop(delivery.task_id)
        self._running.pop(delivery.task_id, None)
        self.remote.task_ended(delivery.task_id)
        try:
            await self.broker.release([delivery])
        except Exception as again:
            logger.error("could not hand %s back either (%s); it comes back when its lease runs out",
                         safe_text(delivery.task_id), again)

    async def _start(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any],
                     revoked: dict[str, bool], now: int) -> None:
        request = self._request(delivery, envelope, task)
        if signals.task_received.has_receivers:
            signals.task_received.send(sender=self, request=request)
        if self.sends_events:
            self.completion.event(received_event(
                self.hostname, envelope.id, envelope.task, envelope.queue, envelope.retries,
                envelope.sent_at_ms / 1000 if envelope.sent_at_ms else None,
                envelope.eta_ms / 1000 if envelope.eta_ms else None))
        if delivery.task_id in revoked:
            record = self._finish_unrun(delivery, envelope, task, "revoked before it started", request=request)
            await self.followups.on_revoked(envelope, record)  # its chain and chord must not wait for it
            return
        if envelope.expires_ms is not None and envelope.expires_ms < now:
            record = self._finish_unrun(delivery, envelope, task, "expired before it started", request=request,
                                        expired=True)
            await self.followups.on_revoked(envelope, record)
            return
        rate = task.rate_limit or self.app.settings.task_default_rate_limit
        if rate and await self._over_rate_limit(delivery, task, rate):
            return
        self.keeper.hold(delivery)
        self.remote.task_started(delivery, envelope)
        self._running[delivery.task_id] = asyncio.create_task(self._run(delivery, envelope, task, request))

    async def _over_rate_limit(self, delivery: Delivery, task: Task[Any, Any], rate: str | float) -> bool:
        per_second = parse_rate(rate)
        if per_second is None:
            return False
        wait_s = await self.control.take_rate_token(f"task:{task.name}", per_second, bucket_capacity(per_second))
        if wait_s <= 0:
            return False
        await self.broker.retry(delivery, delivery.body, now_ms() + max(1, int(wait_s * 1000)))
        return True

    def _finish_unrun(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any], reason: str,
                      started_ms: int | None = None, request: Request | None = None, expired: bool = False,
                      terminated: bool = False) -> ResultRecord:
        logger.info("Task %s[%s] %s: not run", envelope.task, envelope.id, reason)
        if signals.task_revoked.has_receivers:
            signals.task_revoked.send(sender=task, request=request or self._request(delivery, envelope, task),
                                      terminated=terminated, signum=None, expired=expired)
        from ..exceptions import TaskRevokedError

        record = self._record(delivery, envelope, task, REVOKED, exc=TaskRevokedError(reason),
                              date_started_ms=started_ms)
        self.completion.ack(delivery, record)
        if self.sends_events:
            self.completion.event(task_event(TASK_REVOKED, self.hostname, envelope.id, envelope.task,
                                             queue=envelope.queue, exception=reason))
            self.completion.stats.row(time.time(), envelope.task, envelope.queue).revoked += 1
        return record

    # --- running --------------------------------------------------------------------

    def _request(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any] | None = None) -> Request:
        headers = envelope.headers or {}
        properties = dict(headers.get("properties") or {})
        properties.setdefault("correlation_id", envelope.id)
        return Request.of({
            "id": envelope.id, "task": envelope.task, "args": envelope.args, "kwargs": envelope.kwargs,
            "retries": envelope.retries, "root_id": envelope.root_id, "parent_id": envelope.parent_id,
            "group": envelope.group_id, "group_index": envelope.group_index,
            "delivery_info": {"queue": envelope.queue, "routing_key": envelope.queue, "exchange": "",
                              "priority": envelope.priority, "redelivered": delivery.fencing_token > 1},
            "eta": _iso(envelope.eta_ms), "expires": _iso(envelope.expires_ms), "hostname": self.hostname,
            # Celery's protocol headers become the request's fields; the call's own stay headers.
            "headers": {k: v for k, v in headers.items() if k not in PROTOCOL_HEADERS} if headers else {},
            "ignore_result": envelope.ignore_result,
            "callbacks": envelope.link, "errbacks": envelope.link_error, "chord": envelope.chord,
            "timelimit": self._limits(envelope, task),
            "delivery_count": delivery.fencing_token,
            "chain": envelope.chain[::-1], "replaced_task_nesting": int(headers.get("replaced_task_nesting") or 0),
            "properties": properties, "reply_to": properties.get("reply_to"),
            "correlation_id": properties["correlation_id"], "argsrepr": headers.get("argsrepr"),
            "kwargsrepr": headers.get("kwargsrepr"), "stamped_headers": headers.get("stamped_headers"),
            "stamps": headers.get("stamps"), "replaces": replaced.stands_for(headers),
        })

    def _limits(self, envelope: Envelope, task: Task[Any, Any] | None) -> tuple[float | None, float | None]:
        """This run's (time_limit, soft_time_limit): the call's, else the task's, else the app's."""
        return (envelope.time_limit or (task.time_limit if task else None) or self.default_time_limit,
                envelope.soft_time_limit or (task.soft_time_limit if task else None) or self.default_soft_time_limit)

    async def _run(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any], request: Request) -> None:
        started_ts = time.time()
        started_ms = int(started_ts * 1000)
        stores_result = not (envelope.ignore_result or task.ignore_result)
        if self.sends_events:
            self._started_event(envelope, started_ts)
        try:
            if stores_result and (task.track_started or (task.track_started is None and self.track_started)):
                self.completion.record(self._record(delivery, envelope, task, STARTED, date_started_ms=started_ms,
                                                    value={"pid": os.getpid(), "hostname": self.hostname}))
            outcome = await execute(task, request, self._pool, *request.timelimit)
        except asyncio.CancelledError:
            self._on_cancelled(delivery, envelope, task, started_ms)
            return
        except Exception as exc:  # the worker's own code around the body (execute() never raises)
            await self._finish_failed(delivery, envelope, exc)
            return
        finally:
            self._running.pop(delivery.task_id, None)
            self.remote.task_ended(delivery.task_id)
            self._slot_free.set()
        self.tasks_done += 1
        finishing = asyncio.current_task()
        if finishing is not None:
            self._finishing.add(finishing)
            finishing.add_done_callback(self._finishing.discard)
        try:
            await self._finish(delivery, envelope, task, request, outcome, stores_result, started_ms)
            if self.sends_events:
                self.completion.event(outcome_event(
                    OUTCOME_EVENTS[outcome.kind], self.hostname, envelope.id, envelope.task,
                    queue=envelope.queue, started_ts=started_ts, runtime_s=outcome.runtime_s,
                    retries=envelope.retries,
                    exception=(_short(outcome.exc, 500) if outcome.exc is not None and outcome.kind != "ignore"
                               else None),
                    result=_short(outcome.value, 100) if outcome.kind == "success" else None,
                ))
                self.completion.stats.finished(started_ts + outcome.runtime_s, envelope.task, envelope.queue,
                                               OUTCOME_COUNTS[outcome.kind], max(outcome.runtime_s, 0.0))
        except Exception as exc:
            await self._finish_failed(delivery, envelope, exc)

    def _record(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any], state: str,
                **fields: Any) -> ResultRecord:
        extended: dict[str, Any] = {}
        if task.result_extended if task.result_extended is not None else self.result_extended:
            extended = _call_of(envelope)
        return outcome_record(
            envelope.id, state, name=envelope.task, retries=envelope.retries,
            token=delivery.fencing_token, worker=self.hostname, parent_id=envelope.parent_id,
            group_id=envelope.group_id, **extended, **fields,
        )

    async def _finish(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any],
                      request: Request, outcome: Outcome, stores_result: bool, started_ms: int) -> None:
        label = f"Task {envelope.task}[{envelope.id}]"
        kind = outcome.kind
        if kind == "success":
            if logger.isEnabledFor(logging.INFO):  # not the value's repr for a log line nobody keeps
                logger.info("%s succeeded in %.4fs: %s", label, outcome.runtime_s, _short(outcome.value))
            children = await self.followups.on_success(envelope, outcome.value)
            record = None
            if stores_result or envelope.chord:
                try:
                    record = self._record(delivery, envelope, task, SUCCESS, value=outcome.value, children=children,
                                          date_started_ms=started_ms)
                except SerializationError as exc:
                    logger.error("%s returned a value that cannot be stored: %s", label, exc)
                    record = self._record(delivery, envelope, task, FAILURE, exc=exc, date_started_ms=started_ms)
            if envelope.chord and record is not None:
                await self.followups.chord_member_done(envelope, record)
            if request.replaces:
                await self._write_replaced(delivery, envelope, task, request, outcome, record, started_ms)
            self._acknowledge(delivery, envelope, record)
        elif kind == "failure":
            logger.error("%s raised unexpected: %s\n%s", label, _short(outcome.exc, 1000),
                         _clipped_traceback(outcome.traceback or ""))
            record = self._record(delivery, envelope, task, FAILURE, exc=outcome.exc, tb=outcome.traceback,
                                  date_started_ms=started_ms)
            await self.followups.on_failure(envelope, request, outcome.exc, outcome.traceback)
            if envelope.chord:
                await self.followups.chord_member_done(envelope, record)
            await self._replaced_fail(envelope, request, record, outcome)
            self._acknowledge(delivery, envelope, record if stores_result else None)
        elif kind == "retry":
            await self._retry(delivery, envelope, task, outcome, stores_result, label, started_ms)
        elif kind == "ignore":
            logger.info("%s ignored", label)
            self.completion.ack(delivery, None)
        else:  # reject
            await self._reject(delivery, envelope, task, request, outcome, label, started_ms)

    async def _reject(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any], request: Request,
                      outcome: Outcome, label: str, started_ms: int) -> None:
        """``Reject(requeue=True)``: back to the queue; else dead-lettered with a FAILURE holding the Reject."""
        exc = outcome.exc
        self.keeper.drop(delivery.task_id)
        if isinstance(exc, Reject) and exc.requeue:
            logger.info("%s rejected and requeued: %s", label, exc)
            await self.broker.release([delivery])
            return
        reason = safe_text(f"rejected by the task: {exc}")
        logger.warning("%s %s; sent to the dead-letter queue", label, reason)
        if not await self.broker.dead_letter(delivery, reason):
            return  # its lease was taken over: that delivery's outcome counts
        record = self._record(delivery, envelope, task, FAILURE, exc=exc, tb=outcome.traceback,
                              date_started_ms=started_ms)
        if self.store is not None:
            await self.store.store([record])
        if signals.task_failure.has_receivers and exc is not None:
            einfo = ExceptionInfo(exc, outcome.traceback)
            signals.task_failure.send(sender=task, task_id=envelope.id, exception=exc, args=envelope.args,
                                      kwargs=envelope.kwargs, traceback=einfo.tb, einfo=einfo)
        await self._replaced_fail(envelope, request, record, outcome)

    async def _write_replaced(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any], request: Request,
                              outcome: Outcome, record: ResultRecord | None, started_ms: int) -> None:
        """This task replaced others (``Task.replace``): its outcome is theirs too (worker/replaced.py)."""
        if record is None:  # this task keeps no result of its own; the ones it replaced may
            try:
                record = self._record(delivery, envelope, task, SUCCESS, value=outcome.value,
                                      date_started_ms=started_ms)
            except SerializationError as exc:
                record = self._record(delivery, envelope, task, FAILURE, exc=exc, date_started_ms=started_ms)
        for entry in request.replaces:
            stand_in = replaced.record_for(entry, record)
            if entry.get("chord"):
                await self.followups.chord_member_done(replaced.envelope_for(entry, envelope), stand_in)
                if stand_in.state == FAILURE:
                    await self._replaced_never_finish([entry["chord"].get("body")], None, None)
            else:
                self.completion.record(stand_in)

    async def _replaced_fail(self, envelope: Envelope, request: Request, record: ResultRecord,
                             outcome: Outcome) -> None:
        """This task failed: the tasks it stands in for fail with it, and so do those that
        the rest of its chain (or its chord's body) stood in for, which will never run now."""
        if request.replaces:
            await self._write_replaced_failure(envelope, request, record)
        never: list[Any] = list(envelope.chain)
        if envelope.chord:
            never.append(envelope.chord.get("body"))
        await self._replaced_never_finish(never, outcome.exc, outcome.traceback)

    async def _write_replaced_failure(self, envelope: Envelope, request: Request, record: ResultRecord) -> None:
        for entry in request.replaces:
            stand_in = replaced.record_for(entry, record)
            if entry.get("chord"):
                await self.followups.chord_member_done(replaced.envelope_for(entry, envelope), stand_in)
                await self._replaced_never_finish([entry["chord"].get("body")], None, None)
            else:
                self.completion.record(stand_in)

    async def _replaced_never_finish(self, parts: list[Any], exc: BaseException | None, tb: str | None) -> None:
        entries = replaced.pending_in(parts)
        if not entries or self.store is None:
            return
        from ..exceptions import ChordError

        for entry in entries:
            failure = replaced.failure_for(entry, exc or ChordError("a task this one depended on failed"), tb)
            if entry.get("chord"):
                envelope = Envelope(id=str(entry["id"]), task="celeriac.replaced", chord=entry["chord"])
                await self.followups.chord_member_done(envelope, failure)
            else:
                await self.store.store([failure])

    async def _finish_failed(self, delivery: Delivery, envelope: Envelope, exc: Exception) -> None:
        """Finishing itself failed (a broker outage, a result that cannot be written).

        The task must not sit under a lease renewed forever: dead-letter it with the
        reason, or, if even that fails, let its lease run out so another worker takes it.
        """
        reason = f"the worker could not finish this task: {safe_text(repr(exc))}"
        logger.error("Task %s[%s]: %s", envelope.task, envelope.id, reason, exc_info=exc)
        self.keeper.drop(delivery.task_id)
        try:
            await self._dead_letter(delivery, reason)
        except Exception as again:
            logger.error("could not dead-letter %s either (%s); its lease will run out and it will "
                         "be delivered again", envelope.id, again)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a message to the dead-letter queue and record FAILURE, so get() does not hang."""
        reason = safe_text(reason)
        if await self.broker.dead_letter(delivery, reason) and self.store is not None:
            await self.store.store([lost_record(delivery.task_id, reason, delivery.fencing_token)])

    def _acknowledge(self, delivery: Delivery, envelope: Envelope, record: ResultRecord | None) -> None:
        # A chord member's result was written with its group membership, not with the ack.
        self.completion.ack(delivery, None if envelope.chord else record)

    async def _retry(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any], outcome: Outcome,
                     stores_result: bool, label: str, started_ms: int) -> None:
        delay_s = outcome.retry_in_s or 0.0
        logger.info("%s retry: retry in %.1fs: %r", label, delay_s, outcome.exc)
        next_attempt = Envelope(**{f: getattr(envelope, f) for f in envelope.__struct_fields__})
        next_attempt.retries = envelope.retries + 1
        args, kwargs = outcome.retry_args or (envelope.args, envelope.kwargs)
        if next_attempt.serializer == "pickle":
            next_attempt.payload = dumps_pickle((list(args), dict(kwargs)))
            next_attempt.args, next_attempt.kwargs = [], {}
        else:
            next_attempt.args, next_attempt.kwargs = check_args(envelope.task, args, kwargs)
        eta_ms = now_ms() + int(delay_s * 1000) if delay_s > 0 else None
        # The next attempt is sent now, for its eta (as Celery's retry message is): its wait counts from there.
        next_attempt.sent_at_ms, next_attempt.eta_ms = time.time() * 1000, eta_ms
        self.keeper.drop(delivery.task_id)
        if not await self.broker.retry(delivery, encode_envelope(next_attempt), eta_ms):
            logger.warning("%s: retry refused, its lease was taken over by another worker", label)
            return
        if stores_result:
            self.completion.record(self._record(delivery, envelope, task, RETRY, exc=outcome.exc,
                                                tb=outcome.traceback, date_started_ms=started_ms))

    # --- events ---------------------------------------------------------------------

    def _started_event(self, envelope: Envelope, started_ts: float) -> None:
        """task-started, with the wait from when it was sent (or its eta, if later) to now; counted."""
        due_ms = max(envelope.sent_at_ms, envelope.eta_ms or 0)
        wait_s = max(started_ts - due_ms / 1000, 0.0) if due_ms else None
        self.completion.event(started_event(self.hostname, envelope.id, envelope.task, envelope.queue,
                                            envelope.retries, started_ts, wait_s))
        self.completion.stats.started(started_ts, envelope.task, envelope.queue, wait_s)

    def _worker_event(self, kind: str) -> bytes:
        return worker_event(kind, self.hostname, processed=self.tasks_done, concurrency=self.concurrency,
                            pid=os.getpid(), held=[d.task_id for d in self.keeper.held()])

    def _heartbeat(self) -> bytes:
        """Built on the lease keeper's thread: reads only thread-safe state."""
        return self._worker_event(WORKER_HEARTBEAT)

    # --- cancellation ---------------------------------------------------------------

    def _on_cancelled(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any], started_ms: int) -> None:
        reason = self._cancel_reasons.pop(delivery.task_id, "shutdown")
        if reason == "shutdown":
            return  # the shutdown path releases its lease
        if reason == "revoked":
            logger.info("Task %s[%s] terminated: revoked", envelope.task, envelope.id)
            self.keeper.drop(delivery.task_id)
            self._finish_unrun(delivery, envelope, task, "revoked (terminated while running)", started_ms,
                               terminated=True)
            return
        logger.warning("Task %s[%s] cancelled: %s", envelope.task, envelope.id, reason)
        self.keeper.drop(delivery.task_id)

    def _on_leases_lost(self, task_ids: list[str], why: str) -> None:
        for task_id in task_ids:
            running = self._running.get(task_id)
            if running is not None:
                self._cancel_reasons[task_id] = why
                running.cancel()

    def _on_revoked(self, found: dict[str, bool], signum: int | None = None) -> None:
        """Stop the running tasks ``found`` marks to terminate (``signum``: the signal
        ``revoke(signal=...)`` named, for the prefork pool's children)."""
        for task_id, terminate in found.items():
            running = self._running.get(task_id)
            if not terminate or running is None:
                continue
            if not _has_started(running):
                # Its body is not in the pool yet, which could not tell whether it can be
                # stopped; the lease keeper reports the id again at its next renewal.
                continue
            if not self._pool.cancel(task_id, hard=True, signum=signum):
                continue  # it runs to its end (the pool said why); cancelling here would hide it
            self._cancel_reasons[task_id] = "revoked"
            running.cancel()

    # --- shutdown -------------------------------------------------------------------

    async def _shutdown(self, fetcher: asyncio.Task[None]) -> None:
        # Each step is bounded, so a warm shutdown ends within its timeout plus a few
        # seconds whatever the broker does; a second signal (self._force) cuts it short.
        self._cleanup_deadline = asyncio.get_running_loop().time() + SHUTDOWN_FLUSH_TIMEOUT_S
        signals.worker_shutting_down.send(sender=self.hostname, sig=getattr(self, "_stop_signal", None),
                                          how="Cold" if self._force.is_set() else "Warm", exitcode=self.exit_code)
        await self._bounded(asyncio.wait({fetcher}), "stop reserving")
        if self._running and not self._force.is_set():
            logger.info("waiting up to %.0fs for %d running tasks", self.shutdown_timeout_s, len(self._running))
            await self._unless_forced(asyncio.wait(list(self._running.values())), self.shutdown_timeout_s)
        leftovers = dict(self._running)
        for task_id, running in leftovers.items():
            self._cancel_reasons[task_id] = "shutdown"
            running.cancel()
        if leftovers:
            await asyncio.wait(leftovers.values(), timeout=1.0)
        if self._finishing:  # endings being written (follow-ups, results): their acks come next
            await asyncio.wait(set(self._finishing), timeout=SHUTDOWN_FLUSH_TIMEOUT_S)
        # Not cut short by a second signal: an ack not written makes a finished task run again.
        if not await self._unless_forced(self.completion.drain(), SHUTDOWN_FLUSH_TIMEOUT_S, forcible=False):
            logger.error("could not write %s within %.0fs; those tasks are handed back and run again",
                         self.completion.describe_pending(), SHUTDOWN_FLUSH_TIMEOUT_S)
        # The rest of the clean-up shares one more such budget.
        self._cleanup_deadline = asyncio.get_running_loop().time() + SHUTDOWN_FLUSH_TIMEOUT_S
        await self._bounded(self.completion.stop(), "stop the flusher")
        unfinished = self.keeper.held()
        if unfinished:
            cut_off = [d.task_id for d in unfinished if d.task_id in leftovers]
            unacked = [d.task_id for d in unfinished if d.task_id not in leftovers]
            if cut_off:
                logger.warning("released %d tasks still running at shutdown; they will run again: %s",
                               len(cut_off), safe_text(", ".join(cut_off)))
            if unacked:
                logger.warning("released %d finished tasks whose acks could not be written; they will run "
                               "again: %s", len(unacked), safe_text(", ".join(unacked)))
            await self._bounded(self.broker.release(unfinished), "release leases",
                                "they come back when they run out")
        self.keeper.stop()
        if self.sends_events:
            await self._bounded(self.control.emit_events([self._worker_event(WORKER_OFFLINE)]),
                                "send worker-offline")
        # Running tasks had their time above: bodies still on threads are abandoned now.
        self.abandoned_threads = await self._pool.shutdown(0.0)
        if self.pool != "prefork" and signals.worker_process_shutdown.has_receivers:
            signals.worker_process_shutdown.send(sender=self, pid=os.getpid(), exitcode=self.exit_code)
        signals.worker_shutdown.send(sender=self)
        await self._bounded(self.app.close(), "close connections")
        logger.info("%s stopped after %d tasks", self.hostname, self.tasks_done)

    async def _unless_forced(self, step: Coroutine[Any, Any, Any], timeout_s: float,
                             forcible: bool = True) -> bool:
        """Run ``step`` until it ends, ``timeout_s`` passes or a second signal comes; True if it ended."""
        doing = asyncio.ensure_future(step)
        waits: set[asyncio.Future[Any]] = {doing}
        if forcible:
            waits.add(asyncio.ensure_future(self._force.wait()))
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits - {doing}:
            waiting.cancel()
        if not doing.done():
            doing.cancel()
            return False
        return not doing.cancelled() and doing.exception() is None

    async def _bounded(self, step: Awaitable[Any], what: str, consequence: str = "") -> None:
        """Run one clean-up step within what is left of the shutdown's clean-up budget."""
        left_s = self._cleanup_deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(step, max(0.1, left_s))
        except Exception as exc:
            logger.error("could not %s at shutdown (%s)%s", what, safe_text(repr(exc)),
                         f"; {consequence}" if consequence else "")


# Celery's protocol headers: a task reads them as request fields, not in request.headers.
PROTOCOL_HEADERS = frozenset({"argsrepr", "kwargsrepr", "replaced_task_nesting", "properties", "stamped_headers",
                              "stamps", replaced.REPLACES_HEADER})


def _send_start_signals(worker: Worker) -> None:
    """Celery's worker start-up signals, in its order; ``worker_ready`` follows once it reserves.

    ``worker_process_init`` is sent here for the threads and solo pools, whose tasks run in
    this process (prefork sends it in each child).
    """
    signals.celeryd_init.send(sender=worker.hostname, instance=worker, conf=worker.app.conf, options={})
    signals.worker_init.send(sender=worker)
    signals.celeryd_after_setup.send(sender=worker.hostname, instance=worker, conf=worker.app.conf)
    if worker.pool != "prefork":
        signals.worker_process_init.send(sender=worker)


def _send_unusable_message_signal(worker: Worker, delivery: Delivery, exc: Exception,
                                  accept_content: frozenset[str]) -> None:
    """``task_unknown`` for a task this worker does not know, ``task_rejected`` for an unreadable message."""
    if isinstance(exc, NotRegistered):
        if signals.task_unknown.has_receivers:
            name = None
            with contextlib.suppress(Exception):
                name = decode_envelope(delivery.body, accept_content).task
            signals.task_unknown.send(sender=worker, name=name, id=delivery.task_id, message=delivery, exc=exc)
    elif signals.task_rejected.has_receivers:
        signals.task_rejected.send(sender=worker, message=delivery, exc=exc)


def _call_of(envelope: Envelope) -> dict[str, Any]:
    """What an extended record keeps of the call: arguments in wire form, as the producer sent
    them (readers decode them again), and the headers. Pickled arguments JSON cannot hold
    are left out rather than failing the record."""
    try:
        return {"args": to_wire(envelope.args), "kwargs": to_wire(envelope.kwargs),
                "headers": envelope.headers or None}
    except SerializationError:
        return {"headers": envelope.headers or None}


def _has_started(running: asyncio.Task[None]) -> bool:
    """Whether the task has taken its first step (cancelled before it, ``_run`` would clean up nothing)."""
    coro = running.get_coro()
    return not isinstance(coro, Coroutine) or inspect.getcoroutinestate(coro) != inspect.CORO_CREATED


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Hand a call from the lease keeper's thread to the worker's loop."""
    loop.call_soon_threadsafe(fn, *args)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def _clipped_traceback(text: str, limit: int = TRACEBACK_LOG_LIMIT) -> str:
    """A traceback for the log, its middle cut when it is huge (a 10 MB exception message
    would otherwise be one 10 MB log line); the end, which names the exception, stays."""
    if len(text) <= limit:
        return text
    head, tail = limit // 4, limit - limit // 4
    return f"{text[:head]}\n... ({len(text) - limit:,} characters cut) ...\n{text[-tail:]}"


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = safe_text(repr(value))
    except Exception as exc:  # a user __repr__ that raises must not fail the task's ending
        text = f"<{type(value).__qualname__}: repr() raised {exc!r}>"
    return text if len(text) <= limit else text[:limit] + "..."
