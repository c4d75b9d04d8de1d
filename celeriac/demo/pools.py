"""httpx transports that spread a thousand connections over many small pools.

httpcore 1.0's pool re-examines every connection it holds, once per idle connection,
each time a request starts or ends (encode/httpcore#1035, encode/httpx#3215). With a
thousand connections in one pool, 1,000 requests to the 100 ms stand-in cost ~22 s of
CPU on this machine; spread over 256 pools they cost under 1 s. No pool has a limit,
and each keeps its connections alive.

This module imports nothing from celeriac, so the benchmark can load it by path into
other queues' workers without importing celeriac there.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

POOL_SHARDS = 256
UNLIMITED = httpx.Limits(max_connections=None, max_keepalive_connections=None)


class _Shards:
    """Which pool takes the next request: the one with the fewest in flight, the first on a tie.

    The first on a tie, so that a trickle of requests keeps reusing one pool's
    connection (one connection to the service, as with a plain client), and a burst
    spreads evenly over all of them.
    """

    def __init__(self, shards: int) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        self.in_flight = [0] * shards
        self._lock = threading.Lock()  # sync clients are shared by many threads

    def take(self) -> tuple[int, Callable[[], None]]:
        """A shard for one request, and the callable that gives it back (safe to call twice)."""
        with self._lock:
            shard = min(range(len(self.in_flight)), key=self.in_flight.__getitem__)
            self.in_flight[shard] += 1
        finished = False

        def finish() -> None:
            nonlocal finished
            with self._lock:
                if not finished:
                    finished = True
                    self.in_flight[shard] -= 1

        return shard, finish


class ShardedTransport(httpx.AsyncBaseTransport):
    """For ``httpx.AsyncClient(transport=...)``."""

    def __init__(self, shards: int = POOL_SHARDS) -> None:
        # One TLS context for all: building one loads the CA bundle (~8 ms each).
        tls = httpx.create_ssl_context()
        self.transports = [httpx.AsyncHTTPTransport(verify=tls, limits=UNLIMITED) for _ in range(shards)]
        self.shards = _Shards(shards)

    @property
    def in_flight(self) -> list[int]:
        return self.shards.in_flight

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard, finish = self.shards.take()
        try:
            response = await self.transports[shard].handle_async_request(request)
        except BaseException:
            finish()
            raise
        # The connection stays busy until the body is read and closed; count it till then.
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return _with_stream(response, _CountedAsyncStream(response.stream, finish))

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()


class SyncShardedTransport(httpx.BaseTransport):
    """For ``httpx.Client(transport=...)``, shared by many threads."""

    def __init__(self, shards: int = POOL_SHARDS) -> None:
        tls = httpx.create_ssl_context()
        self.transports = [httpx.HTTPTransport(verify=tls, limits=UNLIMITED) for _ in range(shards)]
        self.shards = _Shards(shards)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        shard, finish = self.shards.take()
        try:
            response = self.transports[shard].handle_request(request)
        except BaseException:
            finish()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        return _with_stream(response, _CountedSyncStream(response.stream, finish))

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


def _with_stream(response: httpx.Response, stream: httpx.AsyncByteStream | httpx.SyncByteStream) -> httpx.Response:
    return httpx.Response(response.status_code, headers=response.headers, stream=stream,
                          extensions=response.extensions)


class _CountedAsyncStream(httpx.AsyncByteStream):
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


class _CountedSyncStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, on_close: Callable[[], None]) -> None:
        self._stream = stream
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._on_close()
