"""Moved to :mod:`celeriac.servers.contracts`; kept for one release."""

from ..servers.contracts import ResultStore
from ..servers.waiting import wait_for_ready_record

__all__ = ["ResultStore", "wait_for_ready_record"]
