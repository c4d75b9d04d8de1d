"""The beat loop: any number of these run at once, with no leader and no lock.

Each tick has a task id derived from (entry name, fire time), and every beat computes the
same fire times. A beat publishes a due tick with ``unique_for_s`` (a day, or the entry's
period if longer) and ``on_duplicate="ignore"``: the broker stores the message and
remembers the id in one atomic step (one SQLite transaction, one Redis script, one lock
in memory), so of all the beats that publish a tick, exactly one message results, and a
beat that wakes up late cannot enqueue a tick that already ran. On Redis the id is
remembered per queue, so every beat must route the entry to the same queue (run them
with the same settings).

When ticks were missed (no beat was running, or the broker was unreachable, for longer
than a tick's grace), an entry fires its latest missed tick once (``missed="run_once"``,
the default) or not at all (``missed="skip"``); never a burst. ``overlap="skip"`` lets a
tick go while the entry's previous run is unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..backoff import Backoff, describe
from ..exceptions import ConfigurationError
from ..message import READY_STATES
from ..schedules import BaseSchedule, InvalidSchedule
from ..servers import hide_password
from .entries import RUN_ONCE, SKIP, Entry, check_unique_names, claim_seconds, config_entries
from .state import BeatState, EntryState, Fire, open_state_store

if TYPE_CHECKING:
    from ..app import Celery
    from ..servers import ResultStore, Transport

logger = logging.getLogger("celeriac.beat")

MAX_BACKOFF_S = 30.0
REPLAN_AFTER_MS = 5_000  # a plan older than this when it is about to be sent is made again
NEVER = 2**62


class EntrySource(Protocol):
    """Where entries come from: the settings, or a database (the Django scheduler)."""

    description: str

    async def load(self) -> list[Entry]:
        """Every entry, checked (raise ``BeatConfigError`` at start-up for a bad one)."""

    async def has_changed(self) -> bool:
        """Cheaply: whether ``load()`` would now return something else."""

    async def fired(self, fires: Sequence[Fire]) -> None:
        """Called after ticks were sent (the Django scheduler notes the last run)."""

    async def switch(self, name: str, enabled: bool) -> bool:
        """Turn an entry of this source on or off where it is defined; False if it cannot."""


class ConfigSource:
    """``beat_schedule`` and ``add_periodic_task``: fixed while beat runs."""

    description = "beat_schedule"

    def __init__(self, app: Celery) -> None:
        self.app = app

    async def load(self) -> list[Entry]:
        return config_entries(self.app)

    async def has_changed(self) -> bool:
        return False

    async def fired(self, fires: Sequence[Fire]) -> None:
        return None

    async def switch(self, name: str, enabled: bool) -> bool:
        return False


def plan_ticks(schedule: BaseSchedule, tz: dt.tzinfo, handled_ms: int, now_ms: int, missed: str,
               grace_ms: int) -> tuple[list[int], int | None]:
    """Which ticks in ``(handled_ms, now_ms]`` to fire, and the latest missed one (if any).

    A tick is on time while less than its grace has passed since: ``grace_ms``, or the gap
    to the next tick if shorter, so only the latest tick can be on time. It fires; of the
    missed ones, only the latest fires, and only with ``missed="run_once"``: never more
    than two ticks of one entry at once.
    """
    fire: list[int] = []
    tick = schedule.last_at_or_before(now_ms, tz)
    if tick is not None and tick > handled_ms and now_ms - tick < min(grace_ms, schedule.gap_after_ms(tick, tz)):
        fire.append(tick)
        tick = schedule.last_at_or_before(tick - 1, tz)
    latest_missed = tick if tick is not None and tick > handled_ms else None
    if latest_missed is not None and missed == RUN_ONCE:
        fire.append(latest_missed)
    return sorted(fire), latest_missed


@dataclass
class _Slot:
    """One entry as this beat runs it."""

    entry: Entry
    handled_ms: int  # every tick at or before this is fired or let go
    is_enabled: bool
    last_run: tuple[str, int] | None = None  # (task id, fire ms) of its last run known sent
    next_ms: int = NEVER
    is_done: bool = False  # a one-off that has fired


class Beat:
    """Sends each entry's ticks; run as ``celeriac beat`` or inside a worker (``-B``)."""

    def __init__(self, app: Celery, *, source: EntrySource | None = None, sync_s: float | None = None,
                 hostname: str | None = None, clock: Callable[[], float] = time.time,
                 handle_signals: bool = True) -> None:
        self.app = app
        conf = app.settings
        self.source: EntrySource = source or ConfigSource(app)
        self.sync_ms = int(1000 * float(sync_s if sync_s is not None else conf.beat_max_loop_interval))
        self.grace_ms = int(1000 * conf.beat_missed_after_seconds)
        self.tz = conf.tz
        self.hostname = hostname or f"beat@{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.handle_signals = handle_signals
        self.slots: dict[str, _Slot] = {}
        self.state = BeatState(None)
        self.broker: Transport | None = None
        self.results: ResultStore | None = None
        self.ready = threading.Event()
        self._stop = asyncio.Event()
        self._next_sync_ms = 0
        self._retry_at_ms = 0
        self._sending = Backoff(logger, "beat cannot send ticks", "beat reached the broker again", base_s=0.5,
                                cap_s=MAX_BACKOFF_S, hint="Ticks missed meanwhile fire by each entry's missed "
                                "policy once the broker is back")
        self._is_prepared = False
        self._logged_sync_error = False

    # --- running --------------------------------------------------------------------

    async def run(self) -> None:
        """Prepare (raising ``ConfigurationError`` for bad entries), then send ticks until stopped."""
        self._install_signal_handlers()
        try:
            await self.prepare()
            await self.run_prepared()
        finally:
            await self.close()
            await self.app.close()

    async def prepare(self) -> None:
        """Check the entries, connect, and read the shared state; print the ready line."""
        if self._is_prepared:
            return
        failed = self.app.finalize()
        if failed:
            raise ConfigurationError(
                f"an on_after_configure/on_after_finalize receiver raised {failed[0]!r}; beat cannot know its "
                "schedule (see the logged traceback)")
        entries = await self.source.load()
        check_unique_names(entries)
        if not await self._connect():
            return  # stopped while waiting for the broker
        await self._adopt(entries, self._now_ms())
        self._next_sync_ms = self._now_ms() + self.sync_ms
        self._is_prepared = True
        sys.stderr.write(f"{self.hostname} ready: {len(self.slots)} entries ({self.source.description}), broker "
                         f"{hide_password(self.app.settings.broker_url)}, timezone {self.tz}\n")  # one write
        sys.stderr.flush()
        self.ready.set()

    async def run_prepared(self) -> None:
        while not self._stop.is_set():
            wake_ms = await self.tick()
            delay_s = max(0.0, (wake_ms - self._now_ms()) / 1000)
            if delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay_s)

    def stop(self) -> None:
        self._stop.set()

    @property
    def is_stopping(self) -> bool:
        return self._stop.is_set()

    async def close(self) -> None:
        if self.state.store is not None:
            try:
                await self.state.store.close()
            except Exception as exc:  # closing must not hide why we stopped
                logger.debug("closing beat's state store: %r", exc)
            self.state = BeatState(None)

    def _install_signal_handlers(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        logger.info("%s received: beat stops", signal.Signals(sig).name)
        self.stop()

    async def _connect(self) -> bool:
        """Connect, retrying with back-off while the broker is away (logged once); False if
        stopped meanwhile."""
        store = open_state_store(self.app)
        if store is None:
            logger.warning("beat has nowhere to keep its state (the broker holds no records and no result backend "
                           "is set): missed ticks are not run and --enable/--disable do nothing")
        connecting = Backoff(logger, "beat cannot reach the broker", "beat reached the broker", base_s=0.5,
                             cap_s=MAX_BACKOFF_S)
        while True:
            try:
                clients = await self.app.clients()
                self.broker, self.results = clients.broker, clients.store
                if store is not None:
                    await store.connect()
                self.state = BeatState(store)
                connecting.succeeded()
                return True
            except ConfigurationError:
                raise
            except Exception as exc:
                pause_s = connecting.failed(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause_s)
                if self._stop.is_set():
                    return False

    # --- one step -------------------------------------------------------------------

    async def tick(self, now_ms: int | None = None) -> int:
        """Send whatever is due at ``now_ms``; return when to look again (epoch ms)."""
        now_ms = self._now_ms() if now_ms is None else now_ms
        if now_ms < self._retry_at_ms:
            return self._retry_at_ms
        if now_ms >= self._next_sync_ms:
            await self._sync(now_ms)
            self._next_sync_ms = now_ms + self.sync_ms
        due = [slot for slot in self.slots.values() if slot.next_ms <= now_ms and not slot.is_done]
        if due:
            await self._fire(due, now_ms)
        wake = min([self._next_sync_ms, *(s.next_ms for s in self.slots.values() if not s.is_done)])
        return max(wake, self._retry_at_ms)

    async def _sync(self, now_ms: int) -> None:
        """Read the shared switches again, and the entries when their source changed."""
        try:
            if await self.source.has_changed():
                await self._adopt(await self.source.load(), now_ms)
            states = await self.state.read(list(self.slots), with_last=False)
        except Exception as exc:
            if not self._logged_sync_error:
                self._logged_sync_error = True
                logger.warning("beat could not read its schedule's changes (%s); it goes on with what it has",
                               describe(exc))
            return
        self._logged_sync_error = False
        for name, slot in self.slots.items():
            self._apply_switch(slot, states[name], now_ms)

    def _apply_switch(self, slot: _Slot, state: EntryState, now_ms: int) -> None:
        is_enabled = slot.entry.enabled and state.enabled is not False
        if is_enabled != slot.is_enabled:
            logger.info("beat entry %r is now %s", slot.entry.name, "enabled" if is_enabled else "disabled")
            slot.is_enabled = is_enabled
            if is_enabled:  # ticks while it was off are not missed ones
                self._advance(slot, max(slot.handled_ms, min(now_ms, state.switched_ms or now_ms)))

    async def _adopt(self, entries: list[Entry], now_ms: int) -> None:
        """Take a (new) list of entries, keeping what is known of unchanged ones."""
        try:
            check_unique_names(entries)
        except ConfigurationError:
            if not self._is_prepared:
                raise
            logger.exception("beat keeps its previous schedule")
            return
        new_names = [e.name for e in entries if e.name not in self.slots]
        states = await self.state.read(new_names) if new_names else {}
        first_seen: list[str] = []
        slots: dict[str, _Slot] = {}
        for entry in entries:
            slot = self.slots.get(entry.name)
            if slot is not None:
                if not slot.entry.same_definition(entry):
                    logger.info("beat entry %r changed", entry.name)
                    slot.entry = entry
                    slot.is_done = False
                    self._advance(slot, max(slot.handled_ms, entry.baseline_ms or now_ms))
                else:
                    slot.entry = entry
                if not entry.enabled:
                    slot.is_enabled = False  # switched back on by the next _sync, with the shared switch
                slots[entry.name] = slot
                continue
            state = states.get(entry.name) or EntryState()
            handled = state.handled_ms
            if handled is None:
                # Never seen by any beat: only ticks after the entry's own start (a database
                # row's last edit) can be missed ones; without one, nothing before now is.
                handled = min(now_ms, entry.baseline_ms) if entry.baseline_ms is not None else now_ms
                first_seen.append(entry.name)
            handled = max(handled, entry.baseline_ms or handled)
            slot = _Slot(entry, handled, is_enabled=entry.enabled and state.enabled is not False)
            if state.last_task_id and state.last_fire_ms is not None:
                slot.last_run = (state.last_task_id, state.last_fire_ms)
            self._advance(slot, handled)
            slots[entry.name] = slot
        self.slots = slots
        if first_seen:
            try:
                await self.state.record_handled({n: slots[n].handled_ms for n in first_seen}, states, self.hostname)
            except Exception as exc:
                logger.warning("beat could not note its new entries (%s); it will try again", describe(exc))

    def _advance(self, slot: _Slot, handled_ms: int) -> None:
        slot.handled_ms = handled_ms
        if slot.is_done:
            slot.next_ms = NEVER
            return
        try:
            slot.next_ms = slot.entry.schedule.next_after(handled_ms, self.tz)
        except InvalidSchedule as exc:
            logger.error("beat entry %r will not fire: %s", slot.entry.name, exc)
            slot.next_ms, slot.is_done = NEVER, True

    # --- sending ticks ----------------------------------------------------------------

    async def _fire(self, due: list[_Slot], now_ms: int) -> None:
        plans: list[tuple[_Slot, list[int]]] = []
        for slot in due:
            if not slot.is_enabled:
                self._advance(slot, now_ms)
                continue
            entry = slot.entry
            ticks, latest_missed = plan_ticks(entry.schedule, self.tz, slot.handled_ms, now_ms, entry.missed,
                                              self.grace_ms)
            if latest_missed is not None:
                self._log_missed(slot, latest_missed)
            if ticks and (entry.one_off or entry.overlap == SKIP):
                ticks = ticks[-1:]  # one run at a time
            if ticks:
                plans.append((slot, ticks))
            else:
                self._advance(slot, now_ms)
        if not plans:
            return
        try:
            blocked = await self._unfinished([slot for slot, _ in plans if slot.entry.overlap == SKIP])
        except Exception as exc:
            self._broker_failed(exc, now_ms)
            return
        messages = []
        fires: list[Fire] = []
        sent: list[tuple[_Slot, list[Fire]]] = []
        for slot, ticks in plans:
            entry = slot.entry
            if entry.name in blocked:
                task_id, state = blocked[entry.name]
                logger.info("beat entry %r: tick at %s skipped, its previous run %s is still %s (overlap='skip')",
                            entry.name, self._local(ticks[-1]), task_id, state)
                self._advance(slot, now_ms)
                continue
            slot_fires = []
            for fire_ms in ticks:
                try:
                    message = entry.message(self.app, fire_ms, claim_seconds(entry, fire_ms, self.tz))
                except Exception:  # checked at start-up; should a value fail later, the others still go
                    logger.exception("beat entry %r: cannot build the message of its tick at %s", entry.name,
                                     self._local(fire_ms))
                    continue
                messages.append(message)
                slot_fires.append(Fire(entry.name, fire_ms, message.task_id))
            fires += slot_fires
            sent.append((slot, slot_fires))
        if self._now_ms() - now_ms > REPLAN_AFTER_MS:
            return  # this process stood still while planning (frozen?): plan again from the clock
        if messages:
            assert self.broker is not None
            try:
                await self.broker.publish(messages, on_duplicate="ignore")
            except Exception as exc:
                self._broker_failed(exc, now_ms)
                return
        self._broker_ok()
        for slot, slot_fires in sent:
            if slot_fires:
                last = slot_fires[-1]
                slot.last_run = (last.task_id, last.fire_ms)
                for fire in slot_fires:
                    logger.info("Scheduler: Sending due task %s (%s) for %s, id %s", slot.entry.name,
                                slot.entry.task, self._local(fire.fire_ms), fire.task_id)
                if slot.entry.one_off:
                    slot.is_done = True
            self._advance(slot, now_ms)
        if fires:
            try:
                await self.state.record_fires(fires, self.hostname)
                await self.source.fired(fires)
            except Exception as exc:  # the ticks are sent; only the record of them is late
                logger.warning("beat sent its ticks but could not note them (%s)", describe(exc))

    async def _unfinished(self, slots: list[_Slot]) -> dict[str, tuple[str, str]]:
        """Entries whose last run is not finished: name -> (its task id, its state)."""
        if not slots:
            return {}
        # The latest run may have been sent by another beat (or by hand): the shared record
        # says; whichever of it and this beat's own knowledge is newer is the previous run.
        states = await self.state.read([s.entry.name for s in slots])
        latest: dict[str, tuple[str, int]] = {}
        for slot in slots:
            state = states[slot.entry.name]
            runs = [slot.last_run] if slot.last_run else []
            if state.last_task_id and state.last_fire_ms is not None:
                runs.append((state.last_task_id, state.last_fire_ms))
            if runs:
                latest[slot.entry.name] = max(runs, key=lambda run: run[1])
        if not latest or self.results is None:
            return {}
        records = await self.results.fetch_many(sorted({task_id for task_id, _ in latest.values()}))
        expires_s = self.app.settings.result_expires
        now_ms = self._now_ms()
        blocked: dict[str, tuple[str, str]] = {}
        for name, (task_id, fire_ms) in latest.items():
            record = records.get(task_id)
            if record is not None and record.state in READY_STATES:
                continue
            if record is None and expires_s is not None and now_ms - fire_ms > expires_s * 1000:
                continue  # older than results are kept: its result is gone, not pending
            blocked[name] = (task_id, record.state if record is not None else "PENDING")
        return blocked

    def _broker_failed(self, exc: BaseException, now_ms: int) -> None:
        self._retry_at_ms = now_ms + int(self._sending.failed(exc) * 1000)

    def _broker_ok(self) -> None:
        self._sending.succeeded()
        self._retry_at_ms = 0

    def _log_missed(self, slot: _Slot, latest_missed: int) -> None:
        entry = slot.entry
        first = entry.schedule.next_after(slot.handled_ms, self.tz)
        span = (f"its tick at {self._local(first)}" if first == latest_missed
                else f"its ticks from {self._local(first)} to {self._local(latest_missed)}")
        action = ("sends the latest now, once" if entry.missed == RUN_ONCE else "lets them go")
        # Another beat may well have sent them: the broker keeps one copy of each tick.
        logger.warning("beat entry %r: this beat could not send %s in time (it was not running or stood still, "
                       "or the broker was unreachable); it %s (missed=%r)", entry.name, span, action, entry.missed)

    def _local(self, ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, self.tz).isoformat(timespec="milliseconds")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


async def run_with_worker(worker: Any, beat: Beat) -> None:
    """``celeriac worker -B``: beat on the worker's loop, started after its checks and
    stopped with it. A beat that fails stops the worker with exit code 70."""
    await beat.prepare()
    if beat.is_stopping:
        return
    beat_task = asyncio.create_task(beat.run_prepared(), name="celeriac-beat")

    def ended(done: asyncio.Task[None]) -> None:
        if beat.is_stopping:
            return
        exc = None if done.cancelled() else done.exception()
        logger.critical("the embedded beat stopped unexpectedly; stopping the worker (exit code 70)",
                        exc_info=exc)
        worker.exit_code = 70
        worker.stop()

    beat_task.add_done_callback(ended)
    try:
        await worker.run()
    finally:
        beat.stop()
        try:
            await asyncio.wait_for(beat_task, 5.0)
        except (TimeoutError, Exception):  # the worker's exit code already tells
            beat_task.cancel()
        await beat.close()


