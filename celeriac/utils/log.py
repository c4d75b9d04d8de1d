"""Task loggers and the worker's logging set-up, under Celery's names.

    from celeriac.utils.log import get_task_logger

    logger = get_task_logger(__name__)

    @app.task
    def add(x, y):
        logger.info("Adding %s + %s", x, y)   # ... proj.tasks.add[3f2a...]: Adding 2 + 2

Each record a task logger makes carries ``task_name`` and ``task_id`` (``"???"`` outside a
task), read from the running call when the record is made, so they are right on pool
threads, for concurrent ``async def`` tasks, and under any handler (one that formats
later, on another thread, included). Use them in your own formats as ``%(task_name)s``
and ``%(task_id)s``.

Task loggers are children of the ``celery.task`` logger, as in Celery, so logging
settings written for Celery (a ``celery.task`` entry in Django's ``LOGGING``) apply to
them. ``celeriac worker`` gives that logger a handler printing Celery's task format,
``[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s``,
and sends ``setup_logging`` (a receiver replaces the whole set-up), then
``after_setup_logger`` and ``after_setup_task_logger``.
"""

from __future__ import annotations

import logging

from .. import signals
from ..context import current_request

__all__ = [
    "LOG_FORMAT",
    "TASK_LOG_FORMAT",
    "TaskFormatter",
    "get_logger",
    "get_task_logger",
    "setup_logging",
    "task_logger",
]

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
TASK_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
RESERVED_LOGGER_NAMES = frozenset({"celery", "celery.task"})
UNKNOWN = "???"

#: The parent of every task logger (Celery's name, so configurations written for Celery apply).
task_logger = logging.getLogger("celery.task")


class _TaskFields(logging.Filter):
    """Puts the running task's name and id on each record, when the record is made."""

    def filter(self, record: logging.LogRecord) -> bool:
        add_task_fields(record)
        return True


_TASK_FIELDS = _TaskFields()


def add_task_fields(record: logging.LogRecord) -> None:
    """Set ``record.task_name`` and ``record.task_id`` from the running call (``"???"`` outside one)."""
    if "task_id" in record.__dict__:
        return
    request = current_request()
    if request is not None and request.id is not None:
        record.task_id = request.id
        record.task_name = request.task or UNKNOWN
    else:
        record.task_id = UNKNOWN
        record.task_name = UNKNOWN


class TaskFormatter(logging.Formatter):
    """A formatter for :data:`TASK_LOG_FORMAT`: fills in the task's fields a record lacks."""

    def format(self, record: logging.LogRecord) -> str:
        add_task_fields(record)
        return super().format(record)


def get_logger(name: str) -> logging.Logger:
    """A plain logger by name (Celery's ``get_logger``)."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """A logger for a tasks module: its records carry ``task_name`` and ``task_id``.

    Its parent is the ``celery.task`` logger, whatever its name, as in Celery.
    """
    if name in RESERVED_LOGGER_NAMES:
        raise RuntimeError(f"logger name {name!r} is reserved; use get_task_logger(__name__)")
    logger = logging.getLogger(name)
    logger.parent = task_logger
    if _TASK_FIELDS not in logger.filters:
        logger.addFilter(_TASK_FIELDS)
    return logger


def setup_logging(loglevel: str | int = "WARNING", logfile: str | None = None, format: str = LOG_FORMAT,
                  colorize: bool = False, task_format: str = TASK_LOG_FORMAT, hijack_root: bool = True) -> bool:
    """Set up the worker's logging as Celery's worker does; return False if a receiver took over.

    With a ``setup_logging`` receiver connected, nothing is configured here: the receiver
    does it all (Celery's rule). Otherwise the root logger gets one handler (stderr, or
    ``logfile``) with ``format``, and ``celery.task`` one with ``task_format`` that does
    not propagate (so each task record prints once, in the task format); then
    ``after_setup_logger`` and ``after_setup_task_logger`` are sent with the logger each
    concerns.
    """
    level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
    if signals.setup_logging.has_receivers:
        signals.setup_logging.send(sender=None, loglevel=level, logfile=logfile, format=format, colorize=colorize)
        return False
    root = logging.getLogger()
    if hijack_root:
        root.handlers[:] = [_handler(logfile, logging.Formatter(format))]
    root.setLevel(level)
    signals.after_setup_logger.send(sender=None, logger=root, loglevel=level, logfile=logfile,
                                    format=format, colorize=colorize)
    task_logger.handlers[:] = [_handler(logfile, TaskFormatter(task_format))]
    task_logger.setLevel(level)
    task_logger.propagate = False
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, loglevel=level, logfile=logfile,
                                         format=task_format, colorize=colorize)
    return True


def _handler(logfile: str | None, formatter: logging.Formatter) -> logging.Handler:
    handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler()
    handler.setFormatter(formatter)
    return handler
