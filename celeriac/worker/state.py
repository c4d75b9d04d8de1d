"""Celery's ``celery.worker.state`` module, for code that imports it.

``revoked_stamps`` is Celery's map of revoked stamped-header values; here it stays empty,
since stamping is not available (docs/differences-from-celery.md, "Stamping"), and
clearing it is harmless. The ids a worker heard revoked are in
``app.control.inspect().revoked()``; the broker's revoked set, which every worker checks
before it starts a task, is what decides.
"""

from __future__ import annotations

from typing import Any

__all__ = ["revoked_stamps"]

#: Celery's revoked stamped headers, ``{header: values}``: always empty here.
revoked_stamps: dict[str, Any] = {}
