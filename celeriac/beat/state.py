"""What beats share besides the claims: each entry's last fire and its on/off switch.

Kept as records in a result store on the broker's server (the result backend's when the
broker cannot hold records), never expiring, one pair per entry name:

    celeriac.beat:<name>          the last tick fired (fencing token: its fire time, ms)
    celeriac.beat-control:<name>  enabled or not (fencing token: when that was decided, ms)

The store keeps the record with the highest fencing token and refuses lower ones, so any
number of beats write them without a lock: whoever recorded the latest fire wins, and a
late writer cannot move the last fire back. The claim itself (one message per tick) is
the broker's, not these records': losing a record write costs a line in ``--list`` and,
at worst, one missed-tick fire that the broker refuses as a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..message import STARTED, ResultRecord
from ..servers import ResultStore, can_store_results, create_store

if TYPE_CHECKING:
    from ..app import Celery

LAST_PREFIX = "celeriac.beat:"
CONTROL_PREFIX = "celeriac.beat-control:"
RECORD_NAME = "celeriac.beat"


@dataclass(slots=True)
class EntryState:
    """What the store says about one entry."""

    handled_ms: int | None = None  # every tick at or before this was fired or let go
    last_fire_ms: int | None = None  # the last tick fired (or the last run asked for by hand)
    last_task_id: str | None = None
    is_manual: bool = False  # the last run was asked for by hand
    enabled: bool | None = None  # None: never switched, the entry's own setting holds
    switched_ms: int | None = None


@dataclass(slots=True)
class Fire:
    """One tick sent (or a run asked for by hand)."""

    entry: str
    fire_ms: int
    task_id: str
    is_manual: bool = False


def state_store_url(app: Celery) -> str | None:
    """Where beat keeps its records: the broker's server when it can hold them."""
    broker_url = app.settings.broker_url
    if can_store_results(broker_url) and not broker_url.startswith("django:"):
        return broker_url
    return app.result_backend_url()


def open_state_store(app: Celery) -> ResultStore | None:
    """An unconnected store for beat's records: no expiry (they are one pair per entry)."""
    url = state_store_url(app)
    return create_store(url, None) if url else None


class BeatState:
    """Reads and writes the shared records; every method is one store round trip."""

    def __init__(self, store: ResultStore | None) -> None:
        self.store = store

    async def read(self, names: Sequence[str], *, with_last: bool = True) -> dict[str, EntryState]:
        states = {name: EntryState() for name in names}
        if self.store is None or not names:
            return states
        ids = [CONTROL_PREFIX + n for n in names]
        if with_last:
            ids += [LAST_PREFIX + n for n in names]
        for record_id, record in (await self.store.fetch_many(ids)).items():
            body = record.result if isinstance(record.result, dict) else {}
            if record_id.startswith(CONTROL_PREFIX):
                state = states.get(record_id[len(CONTROL_PREFIX):])
                if state is not None:
                    state.enabled = bool(body.get("enabled", True))
                    state.switched_ms = record.fencing_token
            else:
                state = states.get(record_id[len(LAST_PREFIX):])
                if state is not None:
                    state.handled_ms = record.fencing_token
                    state.last_fire_ms = _int_or_none(body.get("fire_ms"))
                    state.last_task_id = body.get("task_id")
                    state.is_manual = bool(body.get("manual", False))
        return states

    async def record_fires(self, fires: Sequence[Fire], by: str) -> None:
        """Note the ticks sent; a record with a later fire already there stays."""
        if self.store is None or not fires:
            return
        now_ms = _now_ms()
        latest: dict[str, Fire] = {}
        for fire in fires:
            if fire.entry not in latest or fire.fire_ms > latest[fire.entry].fire_ms:
                latest[fire.entry] = fire
        await self.store.store([
            _record(LAST_PREFIX + f.entry, f.fire_ms, now_ms,
                    {"fire_ms": f.fire_ms, "task_id": f.task_id, "manual": f.is_manual, "by": by})
            for f in latest.values()])

    async def record_handled(self, handled_ms: dict[str, int], previous: dict[str, EntryState], by: str) -> None:
        """Move entries' ``handled`` mark on without a fire (first seen, switched back on),
        keeping what the last fire was."""
        if self.store is None or not handled_ms:
            return
        now_ms = _now_ms()
        records = []
        for name, handled in handled_ms.items():
            state = previous.get(name) or EntryState()
            records.append(_record(LAST_PREFIX + name, handled, now_ms,
                                   {"fire_ms": state.last_fire_ms, "task_id": state.last_task_id,
                                    "manual": state.is_manual, "by": by}))
        await self.store.store(records)

    async def switch(self, name: str, enabled: bool, by: str) -> int:
        """Turn an entry on or off for every beat; returns the instant it counts from."""
        assert self.store is not None
        current = (await self.read([name]))[name]
        switched_ms = max(_now_ms(), (current.switched_ms or 0) + 1)
        await self.store.store([_record(CONTROL_PREFIX + name, switched_ms, switched_ms,
                                        {"enabled": enabled, "by": by})])
        if enabled:
            # Ticks while it was off are not missed ones: nothing fires for them.
            await self.record_handled({name: switched_ms}, {name: current}, by)
        return switched_ms


def _record(record_id: str, token: int, now_ms: int, body: dict[str, Any]) -> ResultRecord:
    # STARTED, not a finished state: nothing waits on these, and a store announces only
    # finished records.
    return ResultRecord(task_id=record_id, state=STARTED, result=body, date_done_ms=now_ms, name=RECORD_NAME,
                        fencing_token=token)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _now_ms() -> int:
    return int(time.time() * 1000)
