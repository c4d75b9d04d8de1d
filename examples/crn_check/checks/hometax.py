"""The tax office's business-status service: the query, the reply, and one HTTP client per loop.

``POST {HOMETAX_URL}?actionId=ATTABZAA001R08`` with the XML ``<map>`` Hometax's own page
sends; the reply is an XML ``<map>`` whose ``trtCntn`` / ``smpcBmanTrtCntn`` say whether
the business is active, suspended (휴업자), closed (폐업자) or unknown.
"""

import asyncio
import itertools
import weakref
import xml.etree.ElementTree as ET

import httpx

ACTION_ID = "ATTABZAA001R08"
ACTIVE_PREFIX = "등록되어 있는 사업자등록번호"


class HometaxUnavailable(Exception):
    """The service answered 5xx: worth retrying."""


class HometaxReplyError(Exception):
    """The service answered something that is not its status XML: retrying will not help."""


def query_xml(number: str) -> bytes:
    """The request body (the article's payload). ``number`` is validated digits only."""
    if not (number.isascii() and number.isdigit()):
        raise ValueError(f"not a registration number: {number!r}")  # it goes into XML
    return (
        f'<map id="{ACTION_ID}"><pubcUserNo/><mobYn>N</mobYn><inqrTrgtClCd>1</inqrTrgtClCd>'
        f"<txprDscmNo>{number}</txprDscmNo><dongCode>88</dongCode><psbSearch>Y</psbSearch>"
        '<map id="userReqInfoVO"/></map>'
    ).encode()


def parse_reply(body: bytes) -> tuple[str, str]:
    """``(status, message)``: status is active, suspended, closed or unregistered."""
    if b"<!doctype" in body.lower():
        # ElementTree resolves no external entities, but a DTD can still define internal
        # ones that expand without bound; the service never sends a DTD, so refuse any.
        raise HometaxReplyError("the reply declares a DOCTYPE; refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise HometaxReplyError(f"the reply is not XML ({exc}): {body[:200]!r}") from None
    summary = (root.findtext("smpcBmanTrtCntn") or "").strip()
    detail = (root.findtext("trtCntn") or "").strip()
    if root.findtext("trtEndCd") == "N":
        raise HometaxReplyError(f"the service refused the query: {root.findtext('map/msg') or detail or summary}")
    if detail.startswith("폐업자"):
        return "closed", detail
    if detail.startswith("휴업자"):
        return "suspended", detail
    if summary.startswith(ACTIVE_PREFIX):
        return "active", summary
    return "unregistered", summary or detail


UNLIMITED = httpx.Limits(max_connections=None, max_keepalive_connections=None)
POOL_SHARDS = 64


class ShardedTransport(httpx.AsyncBaseTransport):
    """Unlimited connection pools taking requests in turn.

    httpcore 1.0's pool rescans every connection whenever a request starts or ends
    (encode/httpcore#1035): with a thousand calls in flight in one pool that costs seconds
    of CPU; spread over 64 pools it is negligible. None of the pools has a limit.
    """

    def __init__(self, shards: int = POOL_SHARDS) -> None:
        self.transports = [httpx.AsyncHTTPTransport(limits=UNLIMITED) for _ in range(shards)]
        self._turns = itertools.cycle(self.transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turns).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()


# One client per event loop: an httpx client belongs to the loop it first ran on, and a
# worker process has one loop, so in practice one client (and its pools) per process.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


def http_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(
            transport=ShardedTransport(), timeout=httpx.Timeout(10.0),
            headers={"Accept": "application/xml; charset=UTF-8", "Content-Type": "application/xml; charset=UTF-8"},
        )
        _clients[loop] = client
    return client
