"""Every error celeriac raises.

    CeleriacError
    ├── ConfigurationError         a setting or URL is wrong; the message says how to fix it
    │   └── AppNotFound            -A (or CELERIAC_APP) names no app that can be imported
    ├── BrokerUnavailable          the broker or result store cannot be reached
    ├── SerializationError         an argument or result cannot be encoded (names the argument)
    ├── DuplicateTaskError         a task id that is still pending or running was enqueued again
    ├── NotRegistered              a task name is unknown to this app
    ├── TimeoutError               AsyncResult.get() ran out of time (also a builtins.TimeoutError)
    ├── TaskError                  a remote exception whose class cannot be re-created here
    ├── TaskRevokedError           the task was revoked or expired before it ran
    ├── Retry                      raised by Task.retry(); the worker schedules the next attempt
    ├── MaxRetriesExceededError    Task.retry() was called once too often
    ├── Ignore                     raise inside a task to leave its state alone
    ├── Reject                     raise inside a task to send its message to the dead-letter queue
    ├── SoftTimeLimitExceeded      raised inside a task that passed its soft_time_limit
    ├── TimeLimitExceeded          the task passed its hard time_limit and was stopped
    ├── WorkerLostError            the process running the task died
    ├── LeaseLost                  this worker no longer holds the task's lease (fenced off)
    └── ChordError                 a member of a chord's header failed
"""

from __future__ import annotations

import builtins
from typing import Any


class CeleriacError(Exception):
    """Base class of every celeriac error."""


class ConfigurationError(CeleriacError):
    """A setting, URL or option is wrong."""


class AppNotFound(ConfigurationError):
    """The app named by ``-A`` (or ``CELERIAC_APP``) cannot be imported or is not a Celery app.

    The command line shows it as a usage error (exit status 2).
    """


class BrokerUnavailable(CeleriacError):
    """The broker or result store cannot be reached."""


class SerializationError(CeleriacError, TypeError):
    """A value cannot be encoded or decoded."""


class DuplicateTaskError(CeleriacError):
    """A task id that is still pending or running was enqueued again."""

    @classmethod
    def pending(cls, task_id: str) -> DuplicateTaskError:
        return cls(f"task id {task_id!r} is already pending or running; pick a new id, or pass "
                   "on_duplicate='ignore' to skip it")

    @classmethod
    def remembered(cls, task_id: str) -> DuplicateTaskError:
        return cls(f"task id {task_id!r} was published with unique_for_s a short while ago and is refused "
                   "until that runs out; pick a new id, or pass on_duplicate='ignore' to skip it")


class NotRegistered(CeleriacError, KeyError):
    """A task name is unknown to this app."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "task not registered"


class TimeoutError(CeleriacError, builtins.TimeoutError):
    """Waiting for a result ran out of time."""


class TaskError(CeleriacError):
    """A task failed with an exception that cannot be re-created in this process."""

    def __init__(self, exc_type: str, message: str, traceback: str | None = None) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.exc_message = message
        self.remote_traceback = traceback


class TaskRevokedError(CeleriacError):
    """The task was revoked, or expired, before it could run."""


class Retry(CeleriacError):
    """Raised by ``Task.retry()`` so the worker schedules another attempt."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | None = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when  # seconds from now
        super().__init__(message or (f"Retry in {when}s" if when is not None else "Retry"))


class MaxRetriesExceededError(CeleriacError):
    """``Task.retry()`` was called after the task's ``max_retries`` were used up."""


class Ignore(CeleriacError):
    """Raise inside a task so the worker acknowledges it and records nothing."""


class Reject(CeleriacError):
    """Raise inside a task to send its message to the dead-letter queue."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue


class SoftTimeLimitExceeded(CeleriacError):
    """The task ran past its ``soft_time_limit``; clean up and return or raise."""


class TimeLimitExceeded(CeleriacError):
    """The task ran past its hard ``time_limit`` and was stopped."""


class WorkerLostError(CeleriacError):
    """The process running the task exited before the task finished."""


class LeaseLost(CeleriacError):
    """This worker no longer holds the task's lease; its writes are refused."""


class ChordError(CeleriacError):
    """A member of a chord's header failed, so the chord's body cannot run."""
