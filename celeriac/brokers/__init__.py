"""URL scheme -> broker class: the only place celeriac looks a class up by name."""

from __future__ import annotations

import importlib
from urllib.parse import urlparse

from ..exceptions import ConfigurationError
from .base import Broker, BrokerOptions, OutgoingMessage

# scheme: (module, class, the extra that installs its client library)
BROKERS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("celeriac.brokers.memory", "MemoryBroker", None),
    "sqlite": ("celeriac.brokers.sqlite", "SQLiteBroker", None),
    "redis": ("celeriac.brokers.redis", "RedisBroker", "redis"),
    "rediss": ("celeriac.brokers.redis", "RedisBroker", "redis"),
    "redis+sentinel": ("celeriac.brokers.redis", "RedisBroker", "redis"),
}


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


__all__ = ["BROKERS", "Broker", "BrokerOptions", "OutgoingMessage", "create_broker", "load_class"]
