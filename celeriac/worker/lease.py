"""Keeping the leases of running tasks alive, from a thread of its own.

The keeper has its own event loop and its own broker connection, so a task that blocks
the worker's loop (a sync call in an async task) cannot stop renewal. Every lease/3 it
renews everything held in one batched call. Leases found lost (taken over after a freeze
or partition) and leases it failed to renew for a whole lease length are reported to the
worker, which cancels those tasks rather than run them unprotected.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from ..backoff import Backoff
from ..message import Delivery
from ..servers import Clients
from ..servers.contracts import Transport

logger = logging.getLogger("celeriac.worker.lease")


class LeaseKeeper:
    def __init__(
        self, clients_factory: Callable[[], Clients], lease_s: float,
        on_lost: Callable[[list[str], str], None],
        on_revoked: Callable[[dict[str, bool]], None] | None = None,
        heartbeat: Callable[[], bytes] | None = None, heartbeat_s: float = 2.0,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.on_crash = on_crash  # called from the keeper's thread if it ends by an error
        self.heartbeat = heartbeat
        self.heartbeat_s = heartbeat_s
        self.clients_factory = clients_factory
        self.lease_s = lease_s
        self.on_lost = on_lost  # called from the keeper's thread with ids and a reason
        self.on_revoked = on_revoked
        self._held: dict[str, Delivery] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_success = time.monotonic()

    # The worker's loop calls these; they only touch the dict under the lock.
    def hold(self, delivery: Delivery) -> None:
        with self._lock:
            self._held[delivery.task_id] = delivery

    def drop(self, task_id: str) -> None:
        with self._lock:
            self._held.pop(task_id, None)

    def held(self) -> list[Delivery]:
        with self._lock:
            return list(self._held.values())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="celeriac-lease-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            asyncio.run(self._keep())
        except BaseException as exc:
            # Without renewals every held task would run again elsewhere while this worker
            # goes on running it: the worker must stop rather than carry on unprotected.
            logger.critical("the lease keeper failed", exc_info=exc)
            if self.on_crash is not None:
                self.on_crash(exc)

    async def _keep(self) -> None:
        clients = self.clients_factory()
        # Its own connection: the transport, and the control state kept beside it.
        broker, control = clients.broker, clients.control
        interval_s = self.lease_s / 3
        tick_s = min(interval_s, self.heartbeat_s) if self.heartbeat else interval_s
        lease_ms = int(self.lease_s * 1000)
        failing_since: float | None = None
        next_renewal = time.monotonic() + interval_s
        try:
            await self._connect(broker, interval_s)
            while not self._stop.wait(tick_s):
                if self.heartbeat is not None:
                    try:
                        await control.emit_events([self.heartbeat()])
                    except Exception as exc:
                        logger.debug("heartbeat not sent: %s", exc)
                if time.monotonic() < next_renewal:
                    continue
                next_renewal = time.monotonic() + interval_s
                held = self.held()
                if not held:
                    failing_since = None
                    continue
                try:
                    lost = await broker.renew(held, lease_ms)
                    revoked = await control.revoked_among([d.task_id for d in held])
                except Exception as exc:
                    now = time.monotonic()
                    if failing_since is None:
                        failing_since = now
                        logger.warning("lease renewal failed (%s); retrying every %.1fs", exc, interval_s)
                    if now - failing_since >= self.lease_s:
                        logger.error("lease renewals failed for a whole lease (%.0fs); cancelling "
                                     "the tasks they protect", self.lease_s)
                        self.on_lost([d.task_id for d in held], "lease renewals kept failing")
                        failing_since = None
                    continue
                if failing_since is not None:
                    logger.warning("lease renewal works again")
                    failing_since = None
                if lost:
                    self.on_lost(lost, "lease taken over by another worker")
                if revoked and self.on_revoked is not None:
                    self.on_revoked(revoked)
        finally:
            await broker.close()

    async def _connect(self, broker: Transport, retry_s: float) -> None:
        """Connect, retrying while the broker is away (the worker's own loop retries too)."""
        connecting = Backoff(logger, "lease keeper cannot reach the broker", "lease keeper reached the broker",
                             base_s=0.1, cap_s=retry_s)
        while True:
            try:
                await broker.connect()
                connecting.succeeded()
                return
            except Exception as exc:
                # This thread's own loop runs nothing else, so blocking on the stop event is fine.
                if self._stop.wait(connecting.failed(exc)):
                    return
