"""The demo's app and its one task: ask Hometax whether a registration number is in business.

The broker is ``$CELERIAC_DEMO_BROKER`` (default a SQLite file in the temp directory);
the service is ``hometax_url`` here, from ``$HOMETAX_URL``, by default a stand-in on
port 8123 (``python -m celeriac.demo.standin``). Pointing ``HOMETAX_URL`` at
``https://teht.hometax.go.kr/wqAction.do`` is the only change the real service needs.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import httpx

from celeriac import Celery
from celeriac.demo.hometax import HometaxUnavailable, check

DEFAULT_HOMETAX_URL = "http://127.0.0.1:8123/wqAction.do"


def default_broker_url() -> str:
    return f"sqlite:///{os.path.join(tempfile.gettempdir(), 'celeriac-demo', 'demo.db')}"


app = Celery("celeriac_demo", broker=os.environ.get("CELERIAC_DEMO_BROKER") or default_broker_url())
# The demo's own setting, kept here: app.conf warns about names that are not celeriac's.
hometax_url = os.environ.get("HOMETAX_URL") or DEFAULT_HOMETAX_URL


@app.task(
    bind=True, autoretry_for=(httpx.TransportError, HometaxUnavailable), retry_backoff=True,
    retry_backoff_max=2, max_retries=5,
)
async def check_registration_number(self: Any, number: str) -> dict[str, str]:
    """Look ``number`` up; returns ``{"number", "status", "message"}``."""
    status, message = await check(hometax_url, number)
    return {"number": number, "status": status, "message": message}
