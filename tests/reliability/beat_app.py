"""The app the beat reliability tests run: a 1-second interval and an every-minute crontab.

Each run appends ``run <entry> <fire ms> <task id> <pid>`` to ``RELIABILITY_LOG`` (short
lines written with O_APPEND, so concurrent writers do not interleave).
"""

from __future__ import annotations

import os
from typing import Any

from celeriac import Celery
from celeriac.schedules import crontab

app = Celery(
    "beat-reliability",
    broker=os.environ.get("RELIABILITY_BROKER_URL", "memory://"),
    broker_lease_seconds=float(os.environ.get("RELIABILITY_LEASE_S", "2")),
)
app.conf.beat_schedule = {
    "every-second": {"task": "beat_app.tick", "schedule": 1.0},
    "every-minute": {"task": "beat_app.tick", "schedule": crontab()},
}


@app.task(bind=True, name="beat_app.tick")
async def tick(self: Any) -> None:
    headers = self.request.headers
    line = f"run {headers['periodic_task_name']} {headers['periodic_fire_ms']} {self.request.id} {os.getpid()}\n"
    fd = os.open(os.environ["RELIABILITY_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
