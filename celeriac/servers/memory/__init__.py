"""``memory://name``: broker and result store inside one process, for tests and eager set-ups."""

from __future__ import annotations

from urllib.parse import urlparse

from ..contracts import BrokerOptions
from .results import MemoryResultStore
from .transport import MemoryBroker


def _name(url: str) -> str:
    return urlparse(url).netloc or "default"


class MemoryServer:
    # An ack and its results are written under the state's one lock, in one step.
    acks_carry_results = True

    def __init__(self, url: str) -> None:
        self.url = url

    def holds(self, url: str) -> bool:
        return url.startswith("memory:") and _name(url) == _name(self.url)

    def transport(self, options: BrokerOptions) -> MemoryBroker:
        return MemoryBroker(self.url, options)

    def results(self, expires_s: float | None) -> MemoryResultStore:
        return MemoryResultStore(self.url, expires_s)
