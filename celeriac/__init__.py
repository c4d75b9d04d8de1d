"""celeriac: a distributed task queue that speaks Celery's API."""

from .app import App, Celery, current_app
from .canvas import Signature, chain, chord, chunks, group, maybe_signature, signature, subtask, xmap, xstarmap
from .result import AsyncResult, EagerResult, GroupResult
from .task import Task, shared_task

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncResult",
    "Celery",
    "EagerResult",
    "GroupResult",
    "Signature",
    "Task",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
