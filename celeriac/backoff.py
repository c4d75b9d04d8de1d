"""Waiting out a server outage: one back-off for every loop that retries through one.

The fetch loop, the completion flusher, the lease keeper's connect, beat and the
follow-up writes each keep a :class:`Backoff`. Pauses double from ``base_s`` up to
``cap_s`` with a little jitter, so workers restarted together do not retry in step. An
outage is logged twice however long it lasts: when it starts and when it ends, so a
minute without Redis is two lines in the log, not six hundred.
"""

from __future__ import annotations

import logging
import random

JITTER = 0.2  # each pause is up to this fraction longer


class Backoff:
    def __init__(self, log: logging.Logger, trouble: str, recovered: str, *, base_s: float, cap_s: float,
                 level: int = logging.WARNING, hint: str = "") -> None:
        self.log = log
        self.trouble = trouble  # what fails, as the log says it: "cannot reserve from the broker"
        self.recovered = recovered  # and what works again: "reserving from the broker again"
        self.base_s = base_s
        self.cap_s = cap_s
        self.level = level
        self.hint = hint  # said once, at the start of an outage: what happens meanwhile
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Count a failure; return how long to pause before the next attempt."""
        self.failures += 1
        if self.failures == 1:
            self.log.log(self.level, "%s (%s); retrying with back-off up to %.1fs%s",
                         self.trouble, describe(exc), self.cap_s, f". {self.hint}" if self.hint else "")
        pause = min(self.cap_s, self.base_s * 2.0 ** min(self.failures - 1, 30))
        return pause * (1 + random.uniform(0, JITTER))

    def succeeded(self) -> None:
        """The attempt worked: log the end of an outage, if there was one."""
        if self.failures:
            self.log.warning("%s after %d failed attempts", self.recovered, self.failures)
            self.failures = 0


def describe(exc: BaseException) -> str:
    """An exception as one log phrase: its type, and its message when it has one."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
