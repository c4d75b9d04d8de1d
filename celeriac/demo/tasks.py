"""The demo's app and its one task: ask Hometax whether a registration number is in business.

The broker is ``$CELERIAC_DEMO_BROKER`` (default a SQLite file in the temp directory);
the service is ``app.conf.hometax_url``, from ``$HOMETAX_URL``, by default a stand-in on
port 8123 (``python -m celeriac.demo.standin``). Pointing ``HOMETAX_URL`` at
``https://teht.hometax.go.kr/wqAction.do`` is the only change the real service needs.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import weakref
from typing import Any

import httpx

from celeriac import Celery
from celeriac.demo import safexml
from celeriac.demo.pools import ShardedTransport

ACTION_ID = "ATTABZAA001R08"
DEFAULT_HOMETAX_URL = "http://127.0.0.1:8123/wqAction.do"
ACTIVE_PREFIX = "등록되어 있는 사업자등록번호"


def default_broker_url() -> str:
    return f"sqlite:///{os.path.join(tempfile.gettempdir(), 'celeriac-demo', 'demo.db')}"


app = Celery("celeriac_demo", broker=os.environ.get("CELERIAC_DEMO_BROKER") or default_broker_url())
app.conf.hometax_url = os.environ.get("HOMETAX_URL") or DEFAULT_HOMETAX_URL


class HometaxUnavailable(Exception):
    """The service answered 5xx; worth retrying."""


class HometaxReplyError(Exception):
    """The service answered something that is not its status XML; retrying will not help."""


# One client per event loop: an httpx client is bound to the loop it first ran on, and a
# worker has one loop, so in practice this is one client per process.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def http_client() -> httpx.AsyncClient:
    """The running loop's shared client; no pool limit, so every slot can have a call in flight."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(
            transport=ShardedTransport(), timeout=httpx.Timeout(10.0, connect=10.0),
            headers={"Accept": "application/xml; charset=UTF-8"},
        )
        _clients[loop] = client
    return client


def query_xml(number: str) -> str:
    """The request body Hometax's page sends (the article's payload)."""
    if not number.isascii() or not number.replace("-", "").isalnum():
        # The number goes into XML: refuse anything that could be markup.
        raise ValueError(f"not a registration number: {number!r}")
    return (
        f'<map id="{ACTION_ID}"><pubcUserNo/><mobYn>N</mobYn><inqrTrgtClCd>1</inqrTrgtClCd>'
        f"<txprDscmNo>{number}</txprDscmNo><dongCode>88</dongCode><psbSearch>Y</psbSearch>"
        '<map id="userReqInfoVO"/></map>'
    )


def parse_reply(body: bytes) -> tuple[str, str]:
    """``(status, message)`` from a reply: active, suspended, closed or unregistered."""
    try:
        root = safexml.parse(body)
    except ValueError as exc:
        raise HometaxReplyError(f"unusable reply: {exc}") from None
    summary = (root.findtext("smpcBmanTrtCntn") or "").strip()
    detail = (root.findtext("trtCntn") or "").strip()
    if root.findtext("trtEndCd") == "N":
        reason = root.findtext("map/msg") or detail or summary
        raise HometaxReplyError(f"the service refused the query: {reason}")
    if detail.startswith("폐업자"):
        return "closed", detail
    if detail.startswith("휴업자"):
        return "suspended", detail
    if summary.startswith(ACTIVE_PREFIX):
        return "active", summary
    return "unregistered", summary or detail


@app.task(
    bind=True, autoretry_for=(httpx.TransportError, HometaxUnavailable), retry_backoff=True,
    retry_backoff_max=2, max_retries=5,
)
async def check_registration_number(self: Any, number: str) -> dict[str, str]:
    """Look ``number`` up; returns ``{"number", "status", "message"}``."""
    response = await http_client().post(
        app.conf.hometax_url, params={"actionId": ACTION_ID}, content=query_xml(number).encode(),
        headers={"Content-Type": "application/xml; charset=UTF-8"},
    )
    if response.status_code >= 500:
        raise HometaxUnavailable(f"HTTP {response.status_code} from {app.conf.hometax_url} for {number}")
    if response.status_code != 200:
        raise HometaxReplyError(f"HTTP {response.status_code} from {app.conf.hometax_url}: {response.text[:200]}")
    status, message = parse_reply(response.content)
    return {"number": number, "status": status, "message": message}
