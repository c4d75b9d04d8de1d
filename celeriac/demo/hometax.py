"""The tax office's business-status service: the query, the reply, and one HTTP client per loop.

``POST {url}?actionId=ATTABZAA001R08`` with the XML ``<map>`` Hometax's own page sends;
the reply is an XML ``<map>`` whose ``trtCntn`` / ``smpcBmanTrtCntn`` say whether the
business is active, suspended (휴업자), closed (폐업자) or unknown. Used by the demo's
task and by ``examples/crn_check``; the stand-in (``standin.py``) answers the same way.
"""

from __future__ import annotations

import asyncio
import weakref

import httpx

from celeriac.demo import safexml
from celeriac.demo.pools import ShardedTransport

ACTION_ID = "ATTABZAA001R08"
ACTIVE_PREFIX = "등록되어 있는 사업자등록번호"


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
            headers={"Accept": "application/xml; charset=UTF-8", "Content-Type": "application/xml; charset=UTF-8"},
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
    """``(status, message)`` from a reply: active, suspended, closed or unregistered.

    A reply with a DTD (in any encoding) is refused with ``HometaxReplyError`` saying so.
    """
    try:
        root = safexml.parse(body)
    except safexml.Refused as exc:
        raise HometaxReplyError(f"the reply was refused: {exc}") from None
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


async def check(url: str, number: str) -> tuple[str, str]:
    """Ask the service at ``url`` about ``number``: ``(status, message)``.

    Raises ``HometaxUnavailable`` on a 5xx (retry it) and ``HometaxReplyError`` on any
    other answer that is not the status XML (retrying will not help).
    """
    response = await http_client().post(url, params={"actionId": ACTION_ID}, content=query_xml(number).encode())
    if response.status_code >= 500:
        raise HometaxUnavailable(f"HTTP {response.status_code} from {url} for {number}")
    if response.status_code != 200:
        raise HometaxReplyError(f"HTTP {response.status_code} from {url}: {response.text[:200]}")
    return parse_reply(response.content)
