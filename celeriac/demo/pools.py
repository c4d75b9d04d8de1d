"""An httpx transport that spreads a thousand connections over many small pools.

httpcore 1.0's pool re-examines every connection it holds, once per idle connection,
each time a request starts or ends (encode/httpcore#1035, encode/httpx#3215). With a
thousand connections in one pool, 1,000 requests to the 100 ms stand-in cost ~22 s of
CPU on this machine; spread over 256 pools they cost ~1 s. No pool has a limit, and each
keeps its connections alive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

POOL_SHARDS = 256
UNLIMITED = httpx.Limits(max_connections=None, max_keepalive_connections=None)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Each request goes to the pool with the fewest requests in flight, the first on a tie.

    The first on a tie, so that a trickle of requests keeps reusing one pool's
    connection (one connection to the service, as with a plain client), and a burst
    spreads evenly over all of them.
    """

    def __init__(self, shards: int = POOL_SHARDS) -> None:
        # One TLS context for all: building one loads the CA bundle (~8 ms each).
        tls = httpx.create_ssl_context()
        self.transports = [httpx.AsyncHTTPTransport(verify=tls, limits=UNLIMITED) for _ in range(shards)]
        self.in_flight = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = min(range(len(self.in_flight)), key=self.in_flight.__getitem__)
        self.in_flight[shard] += 1
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                self.in_flight[shard] -= 1

        try:
            response = await self.transports[shard].handle_async_request(request)
        except BaseException:
            finish()
            raise
        # The connection stays busy until the body is read and closed; count it till then.
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=_CountedStream(response.stream, finish), extensions=response.extensions)

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()


class _CountedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, on_close: Callable[[], None]) -> None:
        self._stream = stream
        self._on_close = on_close

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._on_close()
