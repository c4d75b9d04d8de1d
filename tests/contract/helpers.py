"""Message helpers shared by the contract suites (the broker fixture is in conftest.py)."""

from __future__ import annotations

import uuid

from celeriac.servers import Broker, OutgoingMessage

LEASE_MS = 60_000


def msg(task_id: str | None = None, queue: str = "q", priority: int = 0, eta_ms: int | None = None,
        body: bytes | None = None) -> OutgoingMessage:
    task_id = task_id or uuid.uuid4().hex
    return OutgoingMessage(task_id, queue, body or f'{{"id":"{task_id}"}}'.encode(), priority, eta_ms)


async def reserve(broker: Broker, n: int = 10, queues: tuple[str, ...] = ("q",), lease_ms: int = LEASE_MS,
                  timeout_s: float = 0.0) -> list[str]:
    got = await broker.reserve(list(queues), n, lease_ms=lease_ms, worker_id="w1", timeout_s=timeout_s)
    return [d.task_id for d in got]
