"""Celery's ``celery.backends.base`` names: the result store contract, and Celery's base classes.

celeriac's result stores implement :class:`~celeriac.servers.contracts.ResultStore`
(``servers/``), and ``app.backend`` is a :class:`~celeriac.backend.ResultBackend` over the
app's store. Celery's base classes are here so code that names them imports: a check
such as ``isinstance(app.backend, BaseKeyValueStoreBackend)`` is False, since no
celeriac store keeps results under Celery's key layout (``celery-task-meta-<id>``) or
counts chords with Celery's counter.
"""

from __future__ import annotations

from typing import Any

from ..servers.contracts import ResultStore
from ..servers.waiting import wait_for_ready_record

__all__ = ["Backend", "BaseBackend", "BaseKeyValueStoreBackend", "KeyValueStoreBackend", "ResultStore",
           "wait_for_ready_record"]


class BaseBackend:
    """Celery's base class of result backends. celeriac does not load backends written
    against it: a result store implements ``servers.contracts.ResultStore``."""

    def __init__(self, app: Any = None, **kwargs: Any) -> None:
        self.app = app


Backend = BaseBackend


class BaseKeyValueStoreBackend(BaseBackend):
    """Celery's base class of key/value result backends (Redis, memcached, ...).

    Its key layout is Celery's; ``get``/``set``/``mget``/``delete``/``incr`` are what a
    subclass provides. No celeriac result store derives from it.
    """

    task_keyprefix = "celery-task-meta-"
    group_keyprefix = "celery-taskset-meta-"
    chord_keyprefix = "chord-unlock-"

    def get_key_for_task(self, task_id: str, key: str = "") -> str:
        return f"{self.task_keyprefix}{task_id}{key}"

    def get_key_for_group(self, group_id: str, key: str = "") -> str:
        return f"{self.group_keyprefix}{group_id}{key}"

    def get_key_for_chord(self, group_id: str, key: str = "") -> str:
        return f"{self.chord_keyprefix}{group_id}{key}"

    def get(self, key: str) -> Any:
        raise NotImplementedError("a key/value backend provides get()")

    def mget(self, keys: list[str]) -> list[Any]:
        raise NotImplementedError("a key/value backend provides mget()")

    def set(self, key: str, value: Any) -> None:
        raise NotImplementedError("a key/value backend provides set()")

    def delete(self, key: str) -> None:
        raise NotImplementedError("a key/value backend provides delete()")

    def incr(self, key: str) -> int:
        raise NotImplementedError("a key/value backend provides incr()")

    def expire(self, key: str, value: float) -> None:
        return None


KeyValueStoreBackend = BaseKeyValueStoreBackend
