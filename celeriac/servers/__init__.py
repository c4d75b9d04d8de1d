"""Storage by server: one package per technology, found by URL scheme.

The tables below are the only place celeriac looks a class up by name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from urllib.parse import urlparse, urlsplit, urlunsplit

from ..exceptions import ConfigurationError
from .contracts import Broker, BrokerOptions, ControlStore, OutgoingMessage, QueueAdmin, ResultStore, Server, Transport

# scheme: (module, Server class, the extra that installs its client library)
SERVERS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("celeriac.servers.memory", "MemoryServer", None),
    "sqlite": ("celeriac.servers.sqlite", "SQLiteServer", None),
    "redis": ("celeriac.servers.redis", "RedisServer", "redis"),
    "rediss": ("celeriac.servers.redis", "RedisServer", "redis"),
    "redis+sentinel": ("celeriac.servers.redis", "RedisServer", "redis"),
    "postgresql": ("celeriac.servers.postgres", "PostgresServer", "postgres"),
    "postgres": ("celeriac.servers.postgres", "PostgresServer", "postgres"),
    "django": ("celeriac.contrib.django.server", "DjangoServer", "django"),
}
BROKERS = {scheme: entry for scheme, entry in SERVERS.items() if scheme != "django"}
STORES = SERVERS


def open_server(url: str, what: str = "broker") -> Server:
    """The server ``url`` names; ``what`` (broker, result backend) names it in errors."""
    scheme = urlparse(url).scheme
    if scheme not in SERVERS:
        known = ", ".join(sorted(SERVERS))
        raise ConfigurationError(
            f"{what} URL scheme {scheme!r} (in {url!r}) is unknown; expected one of {known}"
        )
    module_name, class_name, extra = SERVERS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra is None or (exc.name or "").startswith("celeriac"):
            raise
        raise ConfigurationError(
            f"the {scheme}:// {what} needs the {exc.name!r} package; install it with "
            f"pip install 'celeriac[{extra}]'"
        ) from exc
    server: Server = getattr(module, class_name)(url)
    return server


@dataclass
class Clients:
    """The roles one event loop talks through, each typed as narrowly as its users need."""

    broker: Transport
    store: ResultStore | None
    control: ControlStore
    admin: QueueAdmin
    # Whether broker.ack(results=...) writes into ``store`` in the same round trip.
    acks_carry_results: bool = False


def open_clients(broker_url: str, store_url: str | None, options: BrokerOptions,
                 expires_s: float | None) -> Clients:
    """Unconnected clients; a store on the broker's own server shares its connection."""
    server = open_server(broker_url)
    # Every broker today keeps the control state and queue admin beside its messages, on
    # the same connection; a transport-only server (AMQP) will take them from the store's.
    broker = server.transport(options)
    if not store_url:
        return Clients(broker, None, broker, broker)
    if server.holds(store_url):
        return Clients(broker, server.results(expires_s), broker, broker, server.acks_carry_results)
    return Clients(broker, open_server(store_url, "result backend").results(expires_s), broker, broker)


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def can_store_results(url: str) -> bool:
    return url.split(":", 1)[0] in SERVERS


def create_broker(url: str, options: BrokerOptions) -> Broker:
    broker: Broker = open_server(url).transport(options)
    return broker


def create_store(url: str, expires_s: float | None) -> ResultStore:
    store: ResultStore = open_server(url, "result backend").results(expires_s)
    return store


__all__ = ["BROKERS", "SERVERS", "STORES", "Broker", "BrokerOptions", "Clients", "ControlStore", "OutgoingMessage",
           "QueueAdmin", "ResultStore", "Server", "Transport", "can_store_results", "create_broker", "create_store",
           "open_clients", "open_server"]
