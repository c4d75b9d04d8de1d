"""The worker: fetch by free slot, run on one event loop, keep leases alive, finish cleanly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loop import Worker

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: eager apply() imports .pool and need not load the worker.
    if name == "Worker":
        from .loop import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
