"""What a progress view needs about a saved group, in one trip to the result store.

``GroupResult.restore(group_id)`` then a state per member would cost one store query per
member; :func:`group_snapshot` reads the member ids and every member's record in one
coroutine (the ids, then ``fetch_many``), from sync code such as a Django view.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._bridge import run_sync
from ...app import current_app
from ...message import PENDING, READY_STATES, SUCCESS, ResultRecord
from ...serialization import from_wire

if TYPE_CHECKING:
    from ...app import Celery


@dataclass
class GroupSnapshot:
    group_id: str
    task_ids: list[str]  # in the group's order
    records: dict[str, ResultRecord]  # the members that have a record yet

    @property
    def total(self) -> int:
        return len(self.task_ids)

    @property
    def done_count(self) -> int:
        return sum(1 for record in self.records.values() if record.state in READY_STATES)

    @property
    def is_complete(self) -> bool:
        return self.done_count == self.total

    def state(self, task_id: str) -> str:
        record = self.records.get(task_id)
        return record.state if record is not None else PENDING

    def counts_by_state(self) -> dict[str, int]:
        return dict(Counter(self.state(task_id) for task_id in self.task_ids))

    def value(self, task_id: str) -> Any:
        """The member's return value once it succeeded, else None."""
        record = self.records.get(task_id)
        if record is None or record.state != SUCCESS:
            return None
        return from_wire(record.result)

    def finished(self) -> list[ResultRecord]:
        """The finished members' records, in the group's order."""
        return [r for t in self.task_ids if (r := self.records.get(t)) is not None and r.state in READY_STATES]


def group_snapshot(group_id: str, app: Celery | None = None) -> GroupSnapshot | None:
    """The saved group's members and their records; None if no group was saved under that id."""
    return run_sync(agroup_snapshot(group_id, app))


async def agroup_snapshot(group_id: str, app: Celery | None = None) -> GroupSnapshot | None:
    if app is None:
        app = current_app()
    store = await app.result_store()
    task_ids = await store.restore_group(group_id)
    if task_ids is None:
        return None
    return GroupSnapshot(group_id, task_ids, await store.fetch_many(task_ids))
