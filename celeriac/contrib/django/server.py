"""``django://``: results as Django models, in the project's own database; no broker."""

from __future__ import annotations

from ...backends.django import DjangoResultStore
from ...exceptions import ConfigurationError
from ...servers.contracts import Broker, BrokerOptions


class DjangoServer:
    acks_carry_results = False  # results go through the ORM, acks to the broker's server

    def __init__(self, url: str) -> None:
        self.url = url

    def holds(self, url: str) -> bool:
        return url == self.url

    def transport(self, options: BrokerOptions) -> Broker:
        raise ConfigurationError(
            f"{self.url!r} holds results only; give a broker URL such as sqlite:///celeriac.db "
            "or redis://localhost:6379/0, and django:// as result_backend"
        )

    def results(self, expires_s: float | None) -> DjangoResultStore:
        return DjangoResultStore(self.url, expires_s)
