"""Moved to :mod:`celeriac.servers.contracts`; kept for one release."""

from ..servers.contracts import (
    SKIPPED_NOT_FOUND,
    SKIPPED_PENDING,
    Broker,
    BrokerOptions,
    OutgoingMessage,
    RequeueOutcome,
    lost_record,
)

__all__ = ["SKIPPED_NOT_FOUND", "SKIPPED_PENDING", "Broker", "BrokerOptions", "OutgoingMessage", "RequeueOutcome",
           "lost_record"]
