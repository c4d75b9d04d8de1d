"""Storage by server: one package per technology, found by URL scheme.

The tables below are the only place celeriac looks a class up by name.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlparse

from ..exceptions import ConfigurationError
from .contracts import Broker, BrokerOptions, OutgoingMessage, ResultStore

# scheme: (module, class, the extra that installs its client library)
BROKERS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("celeriac.servers.memory.transport", "MemoryBroker", None),
    "sqlite": ("celeriac.servers.sqlite.transport", "SQLiteBroker", None),
    "redis": ("celeriac.servers.redis.transport", "RedisBroker", "redis"),
    "rediss": ("celeriac.servers.redis.transport", "RedisBroker", "redis"),
    "redis+sentinel": ("celeriac.servers.redis.transport", "RedisBroker", "redis"),
}


STORES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("celeriac.servers.memory.results", "MemoryResultStore", None),
    "sqlite": ("celeriac.servers.sqlite.results", "SQLiteResultStore", None),
    "redis": ("celeriac.servers.redis.results", "RedisResultStore", "redis"),
    "rediss": ("celeriac.servers.redis.results", "RedisResultStore", "redis"),
    "redis+sentinel": ("celeriac.servers.redis.results", "RedisResultStore", "redis"),
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



def load_class(table: dict[str, tuple[str, str, str | None]], url: str, what: str) -> type:
    scheme = urlparse(url).scheme
    if scheme not in table:
        known = ", ".join(sorted(table))
        raise ConfigurationError(
            f"{what} URL scheme {scheme!r} (in {url!r}) is unknown; expected one of {known}"
        )
    module_name, class_name, extra = table[scheme]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra is None or (exc.name or "").startswith("celeriac"):
            raise
        raise ConfigurationError(
            f"the {scheme}:// {what} needs the {exc.name!r} package; install it with "
            f"pip install 'celeriac[{extra}]'"
        ) from exc
    cls: type = getattr(module, class_name)
    return cls


def create_broker(url: str, options: BrokerOptions) -> Broker:
    broker: Broker = load_class(BROKERS, url, "broker")(url, options)
    return broker


__all__ = ["BROKERS", "STORES", "Broker", "BrokerOptions", "OutgoingMessage", "ResultStore", "can_store_results",
           "create_broker", "create_store", "load_class"]
