"""The worker: fetch by free slot, run on one event loop, keep leases alive, finish cleanly."""

from .loop import Worker

__all__ = ["Worker"]
