"""celeriac: a distributed task queue that speaks Celery's API."""

from .app import App, Celery, current_app
from .canvas import Signature, signature, subtask
from .result import AsyncResult, EagerResult
from .task import Task, shared_task

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncResult",
    "Celery",
    "EagerResult",
    "Signature",
    "Task",
    "__version__",
    "current_app",
    "shared_task",
    "signature",
    "subtask",
]
