"""``self.request``: what a running task knows about its own call.

A context variable, so concurrent async tasks on one loop and tasks on pool threads each
see their own request.
"""

from __future__ import annotations

import contextvars
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


@dataclass
class Request:
    id: str | None = None
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    delivery_info: dict[str, Any] = field(default_factory=dict)
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    eta: str | None = None
    expires: str | None = None
    hostname: str | None = None
    is_eager: bool = False
    headers: dict[str, Any] = field(default_factory=dict)
    ignore_result: bool = False
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    errbacks: list[dict[str, Any]] = field(default_factory=list)
    chord: dict[str, Any] | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    delivery_count: int = 0  # the fencing token of this run
    origin: str | None = None
    # The steps still to run after this one, last first (Celery's order: the next is chain[-1]).
    chain: list[dict[str, Any]] = field(default_factory=list)
    replaced_task_nesting: int = 0  # how many times the task was replaced (Task.replace)
    properties: dict[str, Any] = field(default_factory=dict)  # app_id, reply_to, correlation_id ...
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    stamped_headers: list[str] | None = None
    stamps: dict[str, Any] | None = None
    called_directly: bool = False  # True for the stand-in request of a task called as a function
    utc: bool = True
    # The tasks this one stands in for (Task.replace): read from the message, newest first.
    replaces: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # Set by the worker when it stopped waiting for this run (its time_limit passed on a
    # thread): the body's thread then runs no outcome handlers of its own.
    abandoned: bool = field(default=False, repr=False)

    @property
    def time_limit(self) -> float | None:
        """The hard time limit of this run, in seconds (``timelimit[0]``)."""
        return self.timelimit[0] if self.timelimit else None

    @property
    def soft_time_limit(self) -> float | None:
        """The soft time limit of this run, in seconds (``timelimit[1]``)."""
        return self.timelimit[1] if self.timelimit else None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Request:
        """A request holding ``values`` (field names), the other fields at their defaults.

        What ``Request(**values)`` makes, without the generated ``__init__`` and its 38
        keyword parameters: the worker makes one per message, and that call was ~2 µs of
        a no-op task's ~30. Takes ownership of ``values``.
        """
        request = cls.__new__(cls)
        for name in _FACTORIES.keys() - values.keys():
            values[name] = _FACTORIES[name]()
        request.__dict__ = values  # a field with a plain default not in it reads the class's
        return request


# The fields whose default is made per request (a list, a dict): Request.of makes them.
_FACTORIES = {f.name: f.default_factory for f in fields(Request) if f.default_factory is not MISSING}


_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar("celeriac_request", default=None)


def current_request() -> Request | None:
    return _current.get()


def set_request(request: Request | None) -> contextvars.Token[Request | None]:
    return _current.set(request)


def reset_request(token: contextvars.Token[Request | None]) -> None:
    _current.reset(token)
