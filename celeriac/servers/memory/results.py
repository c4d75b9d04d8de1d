"""``memory://`` result store: shares its state with the memory broker of the same name."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ...message import READY_STATES, GroupProgress, ResultRecord
from ..waiting import wait_for_ready_record
from .transport import MemoryState, state_for


def write_records(state: MemoryState, records: Sequence[ResultRecord], expires_s: float | None) -> list[str]:
    """Write fenced records; the caller holds ``state.lock``. Returns the refused ids."""
    refused = []
    expires_at = time.time() + expires_s if expires_s else None
    for record in records:
        current = state.results.get(record.task_id)
        if current is not None and _is_stale(current[0], record):
            refused.append(record.task_id)
            continue
        state.results[record.task_id] = (record, expires_at)
        if record.state in READY_STATES:
            state.notifier.notify(f"result:{record.task_id}")
    return refused


def _is_stale(current: ResultRecord, new: ResultRecord) -> bool:
    """A lower token loses; with the same token a finished state is not replaced by an unfinished one."""
    if new.fencing_token != current.fencing_token:
        return new.fencing_token < current.fencing_token
    return current.state in READY_STATES and new.state not in READY_STATES


class MemoryResultStore:
    def __init__(self, url: str, expires_s: float | None = 86400.0) -> None:
        self.url = url
        self.expires_s = expires_s
        self.state = state_for(url)

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def store(self, records: Sequence[ResultRecord]) -> list[str]:
        with self.state.lock:
            return write_records(self.state, records, self.expires_s)

    def _get(self, task_id: str) -> ResultRecord | None:
        entry = self.state.results.get(task_id)
        if entry is None:
            return None
        record, expires_at = entry
        if expires_at is not None and expires_at < time.time():
            del self.state.results[task_id]
            return None
        return record

    async def fetch(self, task_id: str) -> ResultRecord | None:
        with self.state.lock:
            return self._get(task_id)

    async def fetch_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        with self.state.lock:
            found = {t: self._get(t) for t in task_ids}
        return {t: r for t, r in found.items() if r is not None}

    async def wait_ready(self, task_id: str, timeout_s: float | None) -> ResultRecord | None:
        return await wait_for_ready_record(lambda: self.fetch(task_id), self.state.notifier, f"result:{task_id}",
                                           timeout_s, None)

    async def forget(self, task_id: str) -> None:
        with self.state.lock:
            self.state.results.pop(task_id, None)

    async def record_group_member(
        self, group_id: str, member_id: str, total: int, record: ResultRecord
    ) -> GroupProgress:
        with self.state.lock:
            write_records(self.state, [record], self.expires_s)
            done = self.state.groups.setdefault(group_id, set())
            was_complete = len(done) >= total
            done.add(member_id)
            return GroupProgress(len(done), total, not was_complete and len(done) >= total)

    async def save_group(self, group_id: str, member_ids: Sequence[str]) -> None:
        with self.state.lock:
            self.state.saved_groups[group_id] = list(member_ids)

    async def restore_group(self, group_id: str) -> list[str] | None:
        with self.state.lock:
            return self.state.saved_groups.get(group_id)

