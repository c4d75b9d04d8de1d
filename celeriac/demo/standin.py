"""A stand-in for the tax office's business-status service, so the demo runs offline.

Hometax answers ``POST /wqAction.do?actionId=ATTABZAA001R08`` with an XML ``<map>``
whose ``<smpcBmanTrtCntn>`` and ``<trtCntn>`` say whether the number is in business,
closed (폐업), suspended (휴업) or unknown to it. This server answers the same request
the same way, after a configurable delay, sometimes with a 503, and from a fixed truth
table (:func:`expected_status`) so a run's counts can be checked.

Run it alone with ``python -m celeriac.demo.standin --port 8123``; the demo starts one
in-process with :class:`StandIn`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal
from urllib.parse import parse_qs

from . import safexml
from .crn import is_valid, normalize, with_check_digit

Status = Literal["active", "suspended", "closed", "unregistered"]
STATUSES: tuple[Status, ...] = ("active", "suspended", "closed", "unregistered")

ACTION_ID = "ATTABZAA001R08"
PATH = "/wqAction.do"
DEFAULT_PORT = 8123
MAX_BODY_BYTES = 64 * 1024

# The article's sample numbers; they belong to operating companies, so they stay active
# whatever the hash below says.
ARTICLE_NUMBERS = ("1208801280", "3898602190", "2208162517")

# Shares of valid numbers per status, in percent; a number's bucket is a hash of it.
SHARES: dict[Status, int] = {"active": 70, "closed": 20, "suspended": 5, "unregistered": 5}

ACTIVE_MESSAGE = "등록되어 있는 사업자등록번호 입니다."
UNREGISTERED_MESSAGE = "국세청에 등록되지 않은 사업자등록번호입니다."
TAX_TYPES = ("부가가치세 일반과세자", "부가가치세 간이과세자")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# --- the truth table ---------------------------------------------------------------------


def _fraction(*parts: object) -> float:
    """A stable number in [0, 1) from ``parts``; the same in every process and run."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def expected_status(number: str) -> Status:
    """What the stand-in says about ``number``: fixed, so tests and the demo can count."""
    number = normalize(number)
    if number in ARTICLE_NUMBERS:
        return "active"
    if not is_valid(number):
        return "unregistered"
    bucket = _fraction("status", number) * 100
    ordered: tuple[Status, ...] = ("active", "closed", "suspended")
    for status in ordered:
        if bucket < SHARES[status]:
            return status
        bucket -= SHARES[status]
    return "unregistered"


def generate_numbers(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct valid numbers, the article's first, statuses mixed as in SHARES."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    numbers = list(ARTICLE_NUMBERS[:count])
    wanted = _quotas(count)
    for number in numbers:
        wanted[expected_status(number)] -= 1
    seen = set(numbers)
    rng = random.Random(seed)
    while len(numbers) < count:
        # First digits 101-999: real numbers start with a tax-office code, never 0.
        candidate = with_check_digit(f"{rng.randrange(101, 1000)}{rng.randrange(10**6):06d}")
        status = expected_status(candidate)
        if candidate in seen or wanted[status] <= 0:
            continue
        seen.add(candidate)
        wanted[status] -= 1
        numbers.append(candidate)
    return numbers


def _quotas(count: int) -> dict[Status, int]:
    quotas: dict[Status, int] = {s: count * SHARES[s] // 100 for s in STATUSES}
    # Hand the rounding remainder to the rarer statuses first, so small runs show a mix.
    for status in sorted(STATUSES, key=lambda s: SHARES[s]):
        if sum(quotas.values()) >= count:
            break
        quotas[status] += 1
    quotas["active"] += count - sum(quotas.values())
    return quotas


def count_statuses(numbers: list[str]) -> dict[Status, int]:
    """How many of ``numbers`` the truth table puts in each status."""
    counts: dict[Status, int] = dict.fromkeys(STATUSES, 0)
    for number in numbers:
        counts[expected_status(number)] += 1
    return counts


# --- the reply ---------------------------------------------------------------------------


def reply_xml(number: str) -> bytes:
    """The XML Hometax sends for ``number``, in the shape of its real replies."""
    status = expected_status(number)
    tax_type = TAX_TYPES[int(_fraction("tax type", number) * len(TAX_TYPES))]
    english = "The business registration number is registered"
    not_registered = "N"
    if status == "active":
        summary, detail = ACTIVE_MESSAGE + " ", f"{tax_type} 입니다."
    elif status == "closed":
        day = time.strftime("%Y-%m-%d", time.gmtime(1262304000 + int(_fraction("closed", number) * 4e8)))
        summary = f"등록되어 있지 않은 사업자등록번호 입니다. (폐업일자: {day})"
        detail = f"폐업자 (과세유형: {tax_type}, 폐업일자:{day}) 입니다."
        english = f"The business registration number is not registered(date of closure: {day})"
    elif status == "suspended":
        summary, detail, english = "", f"휴업자 (과세유형: {tax_type}) 입니다.", ""
    else:
        summary = detail = UNREGISTERED_MESSAGE
        english, not_registered = "The business registration number is not registered", "Y"
    root = ET.Element("map", id=ACTION_ID)
    result_msg = ET.SubElement(root, "map", id="resultMsg")
    for name, text in (("detailMsg", ""), ("msg", ""), ("code", ""), ("result", "S")):
        ET.SubElement(result_msg, name).text = text
    for name, text in (("trtEndCd", "Y"), ("smpcBmanEnglTrtCntn", english), ("nrgtTxprYn", not_registered),
                       ("smpcBmanTrtCntn", summary), ("trtCntn", detail)):
        ET.SubElement(root, name).text = text
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))


def number_from_query(body: bytes) -> str:
    """The ``txprDscmNo`` of a query; ValueError if the body is not one (``safexml.Refused`` if it has a DTD)."""
    root = safexml.parse(body)
    if root.tag != "map" or root.get("id") != ACTION_ID:
        raise ValueError(f'expected <map id="{ACTION_ID}">, got <{root.tag} id="{root.get("id")}">')
    number = root.findtext("txprDscmNo")
    if number is None:
        raise ValueError("the query has no <txprDscmNo>")
    return number.strip()


# --- the ASGI app ------------------------------------------------------------------------


class HometaxStandIn:
    """The ASGI app. ``failure_rate`` of answers are 503s, after the delay like the rest.

    With a ``seed``, whether a request fails depends only on (seed, number, attempt), so
    a run is repeatable whatever order requests arrive in. At most
    ``max_failures_in_a_row`` failures hit one number in a row (None: no bound), so a
    client that retries that often always gets through.
    """

    def __init__(self, *, delay_s: float = 0.1, failure_rate: float = 0.0, seed: int | None = None,
                 max_failures_in_a_row: int | None = 3) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1, got {failure_rate}")
        self.delay_s = delay_s
        self.failure_rate = failure_rate
        self.seed = seed
        self.max_failures_in_a_row = max_failures_in_a_row
        self.requests_served = 0
        self.failures_injected = 0
        self._attempts: dict[str, int] = {}
        self._failures_in_a_row: dict[str, int] = {}
        self._rng = random.Random()

    def should_fail(self, number: str) -> bool:
        """Decide (and remember) whether this attempt at ``number`` gets a 503."""
        attempt = self._attempts.get(number, 0)
        self._attempts[number] = attempt + 1
        if self.failure_rate <= 0:
            return False
        streak = self._failures_in_a_row.get(number, 0)
        if self.max_failures_in_a_row is not None and streak >= self.max_failures_in_a_row:
            failing = False
        elif self.seed is None:
            failing = self._rng.random() < self.failure_rate
        else:
            failing = _fraction("fail", self.seed, number, attempt) < self.failure_rate
        self._failures_in_a_row[number] = streak + 1 if failing else 0
        return failing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to set up, nothing served
        if scope["path"] != PATH:
            await _respond(send, 404, b"not found: the service is POST /wqAction.do?actionId=ATTABZAA001R08")
            return
        if scope["method"] != "POST":
            await _respond(send, 405, b"method not allowed: use POST")
            return
        action = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("actionId", [""])[0]
        if action != ACTION_ID:
            await _respond(send, 400, f"unknown actionId {action!r}; expected {ACTION_ID}".encode())
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, b"request body too large")
            return
        try:
            number = number_from_query(body)
        except safexml.Refused as exc:
            await _respond(send, 400, f"query refused: {exc}".encode())
            return
        except ValueError as exc:
            await _respond(send, 400, str(exc).encode())
            return
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)  # a sleep, not a thread: 1,000 waits cost nothing
        self.requests_served += 1
        if self.should_fail(number):
            self.failures_injected += 1
            await _respond(send, 503, b"service temporarily unavailable (injected by the stand-in)")
            return
        await _respond(send, 200, reply_xml(number), "text/xml;charset=UTF-8")


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


# --- serving -----------------------------------------------------------------------------


class StandIn:
    """The stand-in served by uvicorn on a thread of its own; ``with StandIn() as s: s.url``.

    ``port=0`` picks a free port; the socket is bound in ``start()``, so ``url`` is known
    (and connections queue) before the server thread runs.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, delay_s: float = 0.1,
                 failure_rate: float = 0.0, seed: int | None = None,
                 max_failures_in_a_row: int | None = 3) -> None:
        self.host = host
        self.port = port
        self.app = HometaxStandIn(delay_s=delay_s, failure_rate=failure_rate, seed=seed,
                                  max_failures_in_a_row=max_failures_in_a_row)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The URL to set as HOMETAX_URL."""
        return f"http://{self.host}:{self.port}{PATH}"

    def bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        # A deep backlog: the demo opens a thousand connections at once.
        sock.listen(4096)
        self.port = sock.getsockname()[1]
        self._socket = sock
        return sock

    def server(self) -> Any:
        import uvicorn  # only to serve: the demo's CLI imports this module for its numbers

        # log_config=None: uvicorn must not reconfigure the host process's logging.
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, log_level="warning",
                                access_log=False, backlog=4096, timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        return self._server

    async def serve(self) -> None:
        """Serve on the running loop until stopped (uvicorn handles Ctrl-C on the main thread)."""
        sock = self._socket or self.bind()
        await self.server().serve(sockets=[sock])

    def start(self) -> StandIn:
        sock = self.bind()
        server = self.server()
        self._thread = threading.Thread(target=self._run, args=(server, sock), name="hometax-standin",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the Hometax stand-in did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the Hometax stand-in did not start within 10s")
            time.sleep(0.005)  # no start-up callback in uvicorn; its flag is all there is
        return self

    def _run(self, server: Any, sock: socket.socket) -> None:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop  # optional (the speed extra)

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        except BaseException as exc:
            self._error = exc
        finally:
            loop.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m celeriac.demo.standin",
        description="A stand-in for Hometax's business registration status service (XML over HTTP).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="answer delay (default 100)")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of 503 answers, 0-1")
    parser.add_argument("--seed", type=int, default=None, help="make failures repeatable")
    parser.add_argument("--max-failures-in-a-row", type=int, default=3,
                        help="bound on consecutive failures per number (default 3)")
    options = parser.parse_args(argv)
    standin = StandIn(host=options.host, port=options.port, delay_s=options.delay_ms / 1000,
                      failure_rate=options.failure_rate, seed=options.seed,
                      max_failures_in_a_row=options.max_failures_in_a_row)
    standin.bind()
    print(f"Hometax stand-in at {standin.url} (delay {options.delay_ms:g} ms, failure rate "
          f"{options.failure_rate:g}); set HOMETAX_URL={standin.url}; Ctrl-C stops it", flush=True)
    asyncio.run(standin.serve())


if __name__ == "__main__":
    main()
