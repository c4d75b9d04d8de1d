"""Every error celeriac raises.

    CeleriacError
    ├── ConfigurationError         a setting or URL is wrong; the message says how to fix it
    │   ├── AppNotFound            -A (or CELERIAC_APP) names no app that can be imported
    │   └── ImproperlyConfigured   Celery's name: a call that cannot work as configured (replace())
    ├── BrokerUnavailable          the broker or result store cannot be reached
    ├── SerializationError         an argument or result cannot be encoded (names the argument)
    ├── DuplicateTaskError         a task id that is still pending or running was enqueued again
    ├── NotRegistered              a task name is unknown to this app
    ├── TimeoutError               AsyncResult.get() ran out of time (also a builtins.TimeoutError)
    ├── TaskError                  a remote exception whose class cannot be re-created here
    ├── TaskRevokedError           the task was revoked or expired before it ran
    ├── TaskPredicate              what a task raises to tell the worker how its call ends:
    │   ├── Retry                  raised by Task.retry(); the worker schedules the next attempt
    │   ├── Ignore                 acknowledge the message and record nothing (Task.replace() raises it)
    │   └── Reject                 requeue=False: dead-letter the message and record FAILURE;
    │                              requeue=True: hand the message back to its queue, to run again
    ├── MaxRetriesExceededError    Task.retry() was called once too often
    ├── SoftTimeLimitExceeded      raised inside a task that passed its soft_time_limit
    ├── TimeLimitExceeded          the task passed its hard time_limit and was stopped
    ├── WorkerLostError            the process running the task died
    ├── LeaseLost                  this worker no longer holds the task's lease (fenced off)
    ├── ChordError                 a member of a chord's header failed
    └── NotAvailable               a Celery feature left out on purpose (also a NotImplementedError);
                                   the message names its section of docs/differences-from-celery.md

Celery's other names are here too, so ``from celery.exceptions import ...`` lines keep
working after the import is changed: ``CeleryError`` (``CeleriacError``),
``InvalidTaskError`` (a ``SerializationError``), ``AlreadyRegistered``, ``QueueNotFound``,
``BackendError`` and its ``BackendGetMetaError``/``BackendStoreError``, ``Terminated``,
``WorkerShutdown``, ``WorkerTerminate``, ``NotConfigured``. An exception a task raises is
stored with its ``args`` (when JSON can hold them) and re-created from them by ``get()``,
so ``MyError("a", "b")`` comes back equal to what was raised.
"""

from __future__ import annotations

import builtins
from typing import Any


class CeleriacError(Exception):
    """Base class of every celeriac error."""


class ConfigurationError(CeleriacError):
    """A setting, URL or option is wrong."""


class ImproperlyConfigured(ConfigurationError):
    """Celery's name for a call that cannot work as configured (``replace()`` with an empty chain)."""


class AppNotFound(ConfigurationError):
    """The app named by ``-A`` (or ``CELERIAC_APP``) cannot be imported or is not a Celery app.

    The command line shows it as a usage error (exit status 2).
    """


class BrokerUnavailable(CeleriacError):
    """The broker or result store cannot be reached."""


class SerializationError(CeleriacError, TypeError):
    """A value cannot be encoded or decoded."""


class InvalidTaskError(SerializationError):
    """Celery's name for a task message that cannot be read."""


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
    """A task failed with an exception that cannot be re-created in this process.

    ``exc_type`` is the remote class's dotted path, ``exc_args`` its ``args`` when they
    were stored (``exc_cls_name`` and ``exc_module`` split the path, as Celery's
    ``UnpickleableExceptionWrapper`` names them).
    """

    def __init__(self, exc_type: str, message: str = "", traceback: str | None = None,
                 exc_args: tuple[Any, ...] | None = None) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.exc_message = message
        self.remote_traceback = traceback
        self.exc_module, _, self.exc_cls_name = exc_type.rpartition(".")
        self.exc_args: tuple[Any, ...] = exc_args if exc_args is not None else (message,)


class TaskRevokedError(CeleriacError):
    """The task was revoked, or expired, before it could run."""


class TaskPredicate(CeleriacError):
    """Raised by a task to tell the worker how its call ends (retry, ignore, reject)."""


class Retry(TaskPredicate):
    """Raised by ``Task.retry()`` so the worker schedules another attempt."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | None = None,
        is_eager: bool = False,
        sig: Any = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when  # seconds from now
        self.is_eager = is_eager
        self.sig = sig
        super().__init__(message or (f"Retry in {when}s" if when is not None else "Retry"))

    def humanize(self) -> str:
        return f"in {self.when}s" if self.when is not None else "now"


class MaxRetriesExceededError(CeleriacError):
    """``Task.retry()`` was called after the task's ``max_retries`` were used up."""


class Ignore(TaskPredicate):
    """Raise inside a task so the worker acknowledges it and records nothing."""


class Reject(TaskPredicate):
    """Raise inside a task to refuse its message.

    ``requeue=False`` (the default): the message goes to the dead-letter queue and the
    task's result is a FAILURE holding this exception (``get()`` raises it), as Celery
    records it. ``requeue=True``: the message goes back to the head of its queue and runs
    again (``self.request.delivery_info["redelivered"]`` is then true); nothing is
    recorded. A task that always requeues runs forever, as with Celery.
    """

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


#: Where each deliberate difference from Celery is explained, with its alternative.
DIFFERENCES_PAGE = "docs/differences-from-celery.md"
#: The section of the differences page on ``add_to_chord()``.
ADD_TO_CHORD_SECTION = "Canvas: follow-ups exactly once, chords fail early"


class NotAvailable(CeleriacError, NotImplementedError):
    """A Celery feature celeriac leaves out on purpose (stamping, ``add_to_chord``).

    The message says what to use instead and names the section of the differences page
    (``docs/differences-from-celery.md``) that gives the reason.
    """

    def __init__(self, feature: str, alternative: str, section: str) -> None:
        super().__init__(f"{feature} is not available in celeriac: {alternative} "
                         f"(see {DIFFERENCES_PAGE}, \"{section}\")")
        self.feature = feature
        self.section = section


def stamping_not_available(feature: str) -> NotAvailable:
    """The error every stamping entry point raises (``Signature.stamp()``, revoking by stamps)."""
    return NotAvailable(
        feature, "stamping is left out; to mark a canvas, pass your own header or keyword argument "
        "(apply_async(headers={...}) reaches self.request), and to stop one, revoke its ids "
        "(revoke() on the result of a chain, group or chord revokes every task in it)", "Stamping")


# --- Celery's other names -------------------------------------------------------------

CeleryError = CeleriacError


class AlreadyRegistered(CeleriacError):
    """Celery's name: a task by this name is registered already."""


class QueueNotFound(CeleriacError, KeyError):
    """Celery's name: a queue is not known (queues here are created on first use)."""


class BackendError(CeleriacError):
    """The result store answered with an error."""


class BackendGetMetaError(BackendError):
    """Reading a result from the result store failed."""


class BackendStoreError(BackendError):
    """Writing a result to the result store failed."""


class Terminated(CeleriacError):
    """Celery's name: the task was terminated (``revoke(terminate=True)``)."""


class WorkerShutdown(SystemExit):
    """Celery's name: raised to ask the worker for a warm shutdown."""


class WorkerTerminate(SystemExit):
    """Celery's name: raised to ask the worker for a cold shutdown."""


class NotConfigured(UserWarning):
    """Celery's warning that no configuration was found."""
