"""The app the dashboard's browser tests run a real worker and a real dashboard for.

Its broker comes from $DASHBOARD_TEST_BROKER_URL; tasks that fail or are rejected once
leave a mark file in $DASHBOARD_TEST_MARKS, so their next run (a retry from the dashboard,
a requeued dead letter) succeeds.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from celeriac import Celery
from celeriac.exceptions import Reject

app = Celery("dashproj", broker=os.environ.get("DASHBOARD_TEST_BROKER_URL", "memory://dashproj"))
app.conf.result_extended = True  # the stored result keeps the arguments: the dashboard's retry sends them again
app.conf.worker_heartbeat_seconds = 1.0
app.conf.task_track_started = True  # a running task's record names it (the workers page shows the name)
app.conf.beat_schedule = {"tidy-up": {"task": "tests.dashboard.proj.add", "schedule": 3600.0, "args": (1, 1)}}
MARKS = Path(os.environ.get("DASHBOARD_TEST_MARKS", "."))


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task
def fail_once(key: str) -> str:
    mark = MARKS / f"fail-{key}"
    if not mark.exists():
        mark.touch()
        raise ValueError(f"the first attempt of {key} fails")
    return f"{key} ok"


@app.task
def reject_once(key: str) -> str:
    mark = MARKS / f"reject-{key}"
    if not mark.exists():
        mark.touch()
        raise Reject(f"{key} is not ready yet", requeue=False)
    return f"{key} ok"


@app.task
async def sleepy(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"
