"""Task states under Celery's names (``celery.states``), and the sets Celery groups them in.

A custom state (``self.update_state(state="PROGRESS", meta={...})``) is any other string;
it is not ready, so ``get()`` goes on waiting, and ``AsyncResult.info`` is its ``meta``.

``state`` compares states by how far along they are, as Celery's does: a custom state is
below ``SUCCESS`` and ``FAILURE`` and above every other built-in one.
"""

from __future__ import annotations

from .message import FAILURE, PENDING, RECEIVED, RETRY, REVOKED, STARTED, SUCCESS

__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNREADY_STATES",
    "precedence",
    "state",
]

#: The task was rejected (in events only).
REJECTED = "REJECTED"
#: The task raised ``Ignore`` (in events only).
IGNORED = "IGNORED"

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})

# Highest first; None stands for any state not named here (a custom one).
PRECEDENCE: list[str | None] = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING]
_RANK = {name: rank for rank, name in enumerate(PRECEDENCE)}


def precedence(name: str) -> int:
    """The rank of a state: lower is further along (an unknown state ranks as a custom one)."""
    return _RANK.get(name, _RANK[None])


class state(str):  # Celery's name, lower case
    """A state name whose comparisons follow :func:`precedence`: ``state(SUCCESS) > state(STARTED)``."""

    def __gt__(self, other: str) -> bool:
        return precedence(self) < precedence(other)

    def __ge__(self, other: str) -> bool:
        return precedence(self) <= precedence(other)

    def __lt__(self, other: str) -> bool:
        return precedence(self) > precedence(other)

    def __le__(self, other: str) -> bool:
        return precedence(self) >= precedence(other)
