"""URL scheme -> result store class."""

from __future__ import annotations

from typing import Any

from ..brokers import load_class
from .base import ResultStore

STORES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("celeriac.backends.memory", "MemoryResultStore", None),
    "sqlite": ("celeriac.backends.sqlite", "SQLiteResultStore", None),
    "redis": ("celeriac.backends.redis", "RedisResultStore", "redis"),
    "rediss": ("celeriac.backends.redis", "RedisResultStore", "redis"),
    "redis+sentinel": ("celeriac.backends.redis", "RedisResultStore", "redis"),
    "django": ("celeriac.backends.django", "DjangoResultStore", "django"),
}


def can_store_results(url: str) -> bool:
    return url.split(":", 1)[0] in STORES


def create_store(url: str, expires_s: float | None, broker: Any = None) -> ResultStore:
    """Build the store; it shares the broker's connection when both name the same server."""
    cls = load_class(STORES, url, "result backend")
    shared = getattr(broker, "shared_connection_for", None)
    if broker is not None and getattr(broker, "url", None) == url and shared is not None:
        store: ResultStore = cls(url, expires_s, shared())
    else:
        store = cls(url, expires_s)
    return store


__all__ = ["STORES", "ResultStore", "can_store_results", "create_store"]
