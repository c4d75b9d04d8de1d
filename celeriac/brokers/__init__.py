"""Moved to :mod:`celeriac.servers`; kept for one release."""

from ..servers import BROKERS, create_broker
from ..servers.contracts import Broker, BrokerOptions, OutgoingMessage

__all__ = ["BROKERS", "Broker", "BrokerOptions", "OutgoingMessage", "create_broker"]
