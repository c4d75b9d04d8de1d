"""Moved to :mod:`celeriac.servers`; kept for one release."""

from ..servers import STORES, can_store_results, create_store
from ..servers.contracts import ResultStore

__all__ = ["STORES", "ResultStore", "can_store_results", "create_store"]
