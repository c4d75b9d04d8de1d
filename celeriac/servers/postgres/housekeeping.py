"""Deleting what expired: results, group rows, saved groups, unique and revoked ids, full buckets,
per-minute aggregates older than ``stats.KEEP_MINUTES``, hand-off offers of workers that were killed.

The workers do it themselves, with no separate process: about once a minute, a worker's
``reserve`` (or a result store's write) runs one pass just before its own statement, so
nothing runs in the background and a cancelled caller cancels it cleanly. A pass deletes
in short batches (``sql/housekeeping.sql``), each its own statement, so locks are held a
few milliseconds at most; what is left waits for the next pass. Reads skip expired rows
until then. The first pass comes at a random point of the first minute, so that workers
started together do not all run theirs at once.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

import psycopg

from ...exceptions import BrokerUnavailable
from ...stats import KEEP_MINUTES

if TYPE_CHECKING:
    from .connection import PostgresConnection

logger = logging.getLogger("celeriac.postgres")

EVERY_S = 60.0
BATCH = 500  # rows per statement
MAX_BATCHES = 40  # per table and pass
STATEMENTS = ("expired_results", "expired_group_members", "expired_group_counts", "expired_groups",
              "expired_unique_ids", "expired_revoked", "full_rate_buckets", "old_stats", "expired_offers")


class Housekeeping:
    def __init__(self, connection: PostgresConnection) -> None:
        self.connection = connection
        self.every_s = EVERY_S
        self._next_at = time.monotonic() + EVERY_S * random.uniform(0.1, 1.0)
        self._running = False

    async def run_if_due(self) -> None:
        if self._running or time.monotonic() < self._next_at:
            return
        self._next_at = time.monotonic() + self.every_s
        try:
            await self.run()
        except (psycopg.Error, BrokerUnavailable) as exc:  # the caller's own work must not fail for it
            logger.warning("PostgreSQL housekeeping on %s failed (the next pass retries): %s",
                           self.connection.target.safe_url, exc)

    async def run(self) -> int:
        """One pass; returns how many rows were deleted."""
        self._running = True
        try:
            deleted = 0
            for name in STATEMENTS:
                for _ in range(MAX_BATCHES):
                    count = await self.connection.execute(name, {"batch": BATCH, "keep_minutes": KEEP_MINUTES})
                    deleted += count
                    if count < BATCH:
                        break
            return deleted
        finally:
            self._running = False
