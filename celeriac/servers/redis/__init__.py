"""``redis://``, ``rediss://``, ``redis+sentinel://``: broker and result store on one Redis.

Everything about Redis lives here: the connection and URL (``connection.py``), every key
name (``keys.py``), one Lua script per operation (``scripts/``), the broker
(``transport.py``) and the result store (``results.py``).
"""

from __future__ import annotations

from ..contracts import BrokerOptions
from .connection import RedisConnection, parse_url
from .results import RedisResultStore
from .transport import RedisBroker


class RedisServer:
    # The ack script writes the results of the tasks it acknowledges in the same call.
    acks_carry_results = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = RedisConnection(url)

    def holds(self, url: str) -> bool:
        try:
            return parse_url(url).data_id == self.connection.target.data_id
        except Exception:  # not a Redis URL at all
            return False

    def transport(self, options: BrokerOptions) -> RedisBroker:
        return RedisBroker(self.url, options, self.connection)

    def results(self, expires_s: float | None) -> RedisResultStore:
        return RedisResultStore(self.url, expires_s, self.connection)
