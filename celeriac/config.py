"""Settings, under Celery's names.

``app.conf`` is a dict with attribute access, like Celery's. ``config_from_object``
reads a module, an object or ``"django.conf:settings"``; with ``namespace="CELERY"`` it
takes ``CELERY_BROKER_URL`` as ``broker_url`` and so on, which is Celery's Django
convention. Celery's old upper-case names (``BROKER_URL``, ``CELERY_ALWAYS_EAGER``) are
understood too.

``app.conf`` stays the input, holding what was set as it was set. ``resolve()`` turns it
into ``ResolvedSettings``, a frozen dataclass of every setting celeriac reads, each
converted and checked once (seconds as floats, lists as tuples); ``app.settings`` is
that, cached until ``app.conf`` is written again. A name ``app.conf`` does not know is
logged once, with the nearest known name; Celery settings celeriac has no use for are
known, and logged once at info level with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import importlib
import itertools
import logging
import math
import os
import reprlib
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .exceptions import ConfigurationError

logger = logging.getLogger("celeriac.config")

DEFAULT_BROKER_URL = "sqlite:///celeriac.db"

DEFAULTS: dict[str, Any] = {
    "broker_url": None,  # None: $CELERIAC_BROKER_URL, else DEFAULT_BROKER_URL
    "result_backend": None,  # None: the broker's URL when that server can hold results
    "broker_lease_seconds": 60.0,
    "broker_max_deliveries": 5,
    "broker_transport_options": {},
    "broker_connection_retry_on_startup": True,
    "revoked_ttl_seconds": 7 * 86400.0,
    "task_default_queue": "celery",
    "task_default_priority": 0,
    "task_routes": None,
    "task_acks_late": True,
    "task_ignore_result": False,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_store_eager_result": False,
    "task_allow_error_cb_on_chord_header": False,  # a chord's errbacks also on its header's members
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "task_track_started": False,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_default_rate_limit": None,
    "task_annotations": None,
    "result_expires": dt.timedelta(days=1),
    "result_extended": False,
    "worker_concurrency": 100,
    "worker_prefetch_multiplier": 1,
    "worker_shutdown_timeout": 30.0,
    "worker_send_task_events": True,
    "task_send_sent_event": False,  # producers append task-sent to the event log (one more call per send)
    "worker_heartbeat_seconds": 2.0,
    "events_max": 10_000,
    "worker_pool": "threads",
    "worker_max_tasks_per_child": None,  # prefork: recycle a child after this many tasks
    "worker_max_memory_per_child": None,  # prefork: recycle a child above this resident memory (KiB)
    "task_reject_on_worker_lost": False,  # prefork: a task whose child died runs again
    "task_acks_on_failure_or_timeout": True,  # False: a task whose child died is dead-lettered
    "worker_hijack_root_logger": True,
    "beat_schedule": {},
    "beat_scheduler": None,  # None: "default" (beat_schedule); "django": the admin's periodic tasks
    "beat_max_loop_interval": 5.0,  # seconds between beat's reads of switches and schedule edits
    "beat_missed": "run_once",  # or "skip": what an entry does about ticks no beat could send
    "beat_missed_after_seconds": 5.0,  # a tick sent later than this (or its period) after its time was missed
    "beat_overlap": "allow",  # or "skip": no tick while the entry's previous run is unfinished
    "timezone": None,  # None: UTC, or the host's zone with enable_utc = False (as in Celery)
    "enable_utc": True,
    "include": [],
    "imports": [],
    "dashboard_user": None,  # the dashboard's login (or $CELERIAC_DASHBOARD_USER)
    "dashboard_password_hash": None,  # from `celeriac dashboard hash-password` (or $CELERIAC_DASHBOARD_PASSWORD_HASH)
}

# Celery's pre-4.0 names, still common in Django settings.
OLD_NAMES = {
    "BROKER_URL": "broker_url",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_ROUTES": "task_routes",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERYBEAT_SCHEDULER": "beat_scheduler",
    "CELERYBEAT_MAX_LOOP_INTERVAL": "beat_max_loop_interval",
    "CELERY_ENABLE_UTC": "enable_utc",
    "CELERY_TIMEZONE": "timezone",
    "CELERY_ACKS_LATE": "task_acks_late",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
}

_RECONNECTS = "celeriac's worker and beat reconnect with a back-off of their own"
_NO_EXCHANGES = "there are no exchanges: a queue is a name, created when a message is first sent to it"
_ONE_PROCESS = ("the prefork pool replaces its children itself (`--autoscale MAX,MIN`, "
                "`--max-tasks-per-child`, `--max-memory-per-child`)")
_OWN_LOGGING = "`celeriac worker` sets up its own logging"
_CELERY_ARGUMENT = "it is an argument of Celery() that celeriac does not use"
_READ_FROM_ARGUMENT = "it is an argument of Celery(); pass it there, where celeriac reads it"

# Celery settings celeriac knows and deliberately does not read: setting one logs why, once,
# at info level, instead of the unknown-setting warning.
IGNORED: dict[str, str] = {
    "broker_pool_limit": "each event loop has its own connections",
    "broker_connection_retry": _RECONNECTS,
    "broker_connection_max_retries": _RECONNECTS,
    "broker_connection_timeout": _RECONNECTS,
    "broker_channel_error_retry": _RECONNECTS,
    "broker_heartbeat": "leases, renewed while a task runs, tell a dead worker instead",
    "broker_use_ssl": "TLS is chosen by the URL (rediss://)",
    "redis_backend_use_ssl": "TLS is chosen by the URL (rediss://)",
    "result_backend_transport_options": "the result store takes its options from its URL",
    "result_persistent": "results are kept until result_expires",
    "result_compression": "results are not compressed",
    "task_compression": "messages are not compressed",
    "result_accept_content": "results are always JSON",
    "result_chord_join_timeout": "a chord's body is sent by the worker that finishes its last member",
    "result_chord_retry_interval": "a chord's body is sent by the worker that finishes its last member",
    "task_create_missing_queues": _NO_EXCHANGES,
    "task_queues": _NO_EXCHANGES,
    "task_default_exchange": _NO_EXCHANGES,
    "task_default_exchange_type": _NO_EXCHANGES,
    "task_default_routing_key": _NO_EXCHANGES,
    "task_default_delivery_mode": "messages are always kept until acknowledged",
    "task_queue_max_priority": "every queue has priorities 0-9",
    "worker_proc_alive_timeout": _ONE_PROCESS,
    "worker_pool_restarts": _ONE_PROCESS,
    "worker_autoscaler": _ONE_PROCESS,
    "worker_redirect_stdouts": _OWN_LOGGING,
    "worker_redirect_stdouts_level": _OWN_LOGGING,
    "worker_log_format": _OWN_LOGGING,
    "worker_task_log_format": _OWN_LOGGING,
    "worker_log_color": _OWN_LOGGING,
    "worker_enable_remote_control": "app.control reads worker heartbeats and revoked ids from the broker",
    "worker_cancel_long_running_tasks_on_connection_loss": "a task runs while its lease is renewed",
    "worker_lost_wait": "leases tell a lost worker",
    "worker_state_db": "revoked ids are kept in the broker",
    "beat_sync_every": "beat keeps its state in the store beside the broker, not in a file",
    "beat_schedule_filename": "beat keeps its state in the store beside the broker, not in a file",
    "event_queue_expires": "events go to the event log in the broker (events_max)",
    "event_queue_ttl": "events go to the event log in the broker (events_max)",
    "event_serializer": "events go to the event log in the broker (events_max)",
    # Celery(...)'s own arguments, which land in app.conf here.
    "loader": _CELERY_ARGUMENT,
    "amqp": _CELERY_ARGUMENT,
    "events": _CELERY_ARGUMENT,
    "log": _CELERY_ARGUMENT,
    "control": _CELERY_ARGUMENT,
    "tasks": _CELERY_ARGUMENT,
    "changes": _CELERY_ARGUMENT,
    "fixups": _CELERY_ARGUMENT,
    "task_cls": _READ_FROM_ARGUMENT,
    "autofinalize": _CELERY_ARGUMENT,
    "namespace": _CELERY_ARGUMENT,
    "strict_typing": _READ_FROM_ARGUMENT,
}

MISSED_POLICIES = ("run_once", "skip")
OVERLAP_POLICIES = ("allow", "skip")
SERIALIZERS = ("json", "pickle")


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedSettings:
    """``app.settings``: every setting celeriac reads, converted and checked by ``resolve()``.

    Names are ``app.conf``'s. Durations are float seconds; lists are tuples; dicts
    (``broker_transport_options``, ``beat_schedule``) and ``task_routes`` are the objects
    that were set, not copies.
    """

    broker_url: str  # $CELERIAC_BROKER_URL or DEFAULT_BROKER_URL when unset
    result_backend: str | None
    broker_lease_seconds: float
    broker_max_deliveries: int
    broker_transport_options: Mapping[str, Any]
    broker_connection_retry_on_startup: bool
    revoked_ttl_seconds: float
    task_default_queue: str
    task_default_priority: int
    task_routes: Any  # None, a dict, a function, or a list of them (routing.py)
    task_acks_late: bool
    task_ignore_result: bool
    task_always_eager: bool
    task_eager_propagates: bool
    task_store_eager_result: bool
    task_allow_error_cb_on_chord_header: bool
    task_serializer: str
    result_serializer: str
    accept_content: tuple[str, ...]
    task_track_started: bool
    task_time_limit: float | None
    task_soft_time_limit: float | None
    task_default_rate_limit: float | None  # tasks per second
    task_annotations: Any
    result_expires: float | None  # seconds; None keeps results
    result_extended: bool
    worker_concurrency: int
    worker_prefetch_multiplier: int
    worker_shutdown_timeout: float
    worker_send_task_events: bool
    task_send_sent_event: bool
    worker_heartbeat_seconds: float
    events_max: int
    worker_pool: str
    worker_max_tasks_per_child: int | None
    worker_max_memory_per_child: int | None  # KiB
    task_reject_on_worker_lost: bool
    task_acks_on_failure_or_timeout: bool
    worker_hijack_root_logger: bool
    beat_schedule: Mapping[str, Any]
    beat_scheduler: str | type | None
    beat_max_loop_interval: float
    beat_missed: str
    beat_missed_after_seconds: float
    beat_overlap: str
    timezone: str | dt.tzinfo | None
    enable_utc: bool
    include: tuple[str, ...]
    imports: tuple[str, ...]
    dashboard_user: str | None
    dashboard_password_hash: str | None
    tz: dt.tzinfo  # from timezone and enable_utc: the zone crontabs are read in


def resolve(conf: Mapping[str, Any]) -> ResolvedSettings:
    """``conf`` (``app.conf``, or any mapping of setting names) converted and checked.

    A setting missing from ``conf`` takes its default. Raises ``ConfigurationError``
    naming the first setting that is wrong, and nothing else.
    """
    values: dict[str, Any] = {}
    for name, convert in _CONVERTERS.items():
        value = conf[name] if name in conf else _fresh(DEFAULTS[name])
        try:
            values[name] = convert(name, value)
        except ConfigurationError:
            raise
        except Exception as exc:  # a value whose own methods fail: still the setting's fault
            raise ConfigurationError(f"{name} could not be read: {_show(value)} raised {exc!r}") from exc
    if "visibility_timeout" in values["broker_transport_options"]:
        _warn_visibility_timeout(values["broker_lease_seconds"])
    values["tz"] = _zone(values["timezone"], values["enable_utc"])
    return ResolvedSettings(**values)


# --- conversions: each takes (setting name, value) and returns the typed value ---------


_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


def _show(value: Any) -> str:
    try:
        return _repr.repr(value)
    except Exception:
        return f"a {type(value).__name__}"


def _bool(name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0", ""):
            return False
    raise ConfigurationError(f"{name} must be True or False, got {_show(value)}")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, dt.timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _seconds(*, minimum: float = 0.0, above: bool = True, optional: bool = False,
             zero_is_none: bool = False, zero_is_default: bool = False) -> Callable[[str, Any], float | None]:
    """Seconds (a number, a numeric string or a timedelta) ``> minimum`` (``>=`` unless ``above``).

    None is the setting's default, or no value at all when ``optional``.
    """
    def convert(name: str, value: Any) -> float | None:
        if value is None:
            return None if optional else float(DEFAULTS[name])
        number = _number(value)
        if zero_is_none and number == 0:
            return None
        if zero_is_default and number == 0:
            return float(DEFAULTS[name])
        if number is None or number < minimum or (above and number == minimum):
            what = "a positive number of seconds" if above else "a number of seconds, 0 or more"
            if optional:
                what += " or None"
            raise ConfigurationError(f"{name} must be {what}, got {_show(value)}")
        return number
    return convert


def _integer(*, minimum: int = 1, maximum: int | None = None, optional: bool = False) -> Callable[[str, Any], Any]:
    """An integer ``>= minimum``; with ``optional``, None and 0 mean no value (None)."""
    def convert(name: str, value: Any) -> int | None:
        if value is None or (optional and value == 0 and not isinstance(value, bool)):
            return None if optional else int(DEFAULTS[name])
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            if maximum is not None:
                what = f"an integer from {minimum} to {maximum}"
            else:
                what = "a positive integer" if minimum == 1 else f"an integer, {minimum} or more"
            raise ConfigurationError(f"{name} must be {what}, got {_show(value)}")
        return number
    return convert


def _text(*, choices: tuple[str, ...] = (), optional: bool = False) -> Callable[[str, Any], str | None]:
    def convert(name: str, value: Any) -> str | None:
        if value is None:
            return None if optional else str(DEFAULTS[name])
        if not isinstance(value, str) or not value or (choices and value not in choices):
            what = " or ".join(repr(c) for c in choices) if choices else "a non-empty string"
            raise ConfigurationError(f"{name} must be {what}, got {_show(value)}")
        return value
    return convert


def _url(name: str, value: Any) -> str | None:
    """A URL: a string, or an object whose str() is one (yarl, pydantic); None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, bytes, Mapping, list, tuple, set, frozenset)):
        raise ConfigurationError(f"{name} must be a URL string, got {_show(value)}")
    return str(value)


def _broker_url(name: str, value: Any) -> str:
    url = _url(name, value)
    return url or os.environ.get("CELERIAC_BROKER_URL") or DEFAULT_BROKER_URL


def _names(name: str, value: Any) -> tuple[str, ...]:
    """A list of strings (a tuple, a set, or one string for one item)."""
    if value is None:
        return tuple(DEFAULTS[name])
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ConfigurationError(f"{name} must be a list of strings, got {_show(value)}")


def _mapping(what: str) -> Callable[[str, Any], Mapping[str, Any]]:
    def convert(name: str, value: Any) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{name} must be a dict of {what}, got {_show(value)}")
        return value
    return convert


def _anything(name: str, value: Any) -> Any:
    return value


_expires = _seconds(above=False, optional=True)  # result_expires: a timedelta or seconds; None keeps results


def _rate(name: str, value: Any) -> float | None:
    """A rate limit as tasks per second: ``"10/s"``, ``"100/m"``, ``"1000/h"`` or a number."""
    if value is None or value == "" or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                        and value == 0):
        return None
    if isinstance(value, str):
        from .worker.limits import parse_rate

        try:
            per_second = parse_rate(value)
        except ConfigurationError:
            per_second = -1.0
        if per_second is None or (math.isfinite(per_second) and per_second > 0):
            return per_second
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise ConfigurationError(
        f"{name} must be a rate such as '10/s', '100/m', '1000/h' or a number per second, got {_show(value)}")


def _scheduler(name: str, value: Any) -> str | type | None:
    if value is None or isinstance(value, (str, type)):
        return value
    raise ConfigurationError(f"{name} must be 'default', 'django', 'module:Class' or a class, got {_show(value)}")


def _timezone(name: str, value: Any) -> str | dt.tzinfo | None:
    if value is None or isinstance(value, (str, dt.tzinfo)):
        return value or None
    raise ConfigurationError(f"{name} must be an IANA zone name such as 'Europe/Berlin', got {_show(value)}")


def _zone(timezone: str | dt.tzinfo | None, enable_utc: bool) -> dt.tzinfo:
    from .schedules import zone_for

    try:
        return zone_for(timezone, enable_utc=enable_utc)
    except ConfigurationError:
        raise
    except Exception as exc:  # ZoneInfo refuses some strings with other errors
        raise ConfigurationError(f"timezone {_show(timezone)} is unknown; use an IANA name such as "
                                 f"'Europe/Berlin' or 'UTC' ({exc})") from exc


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "broker_url": _broker_url,
    "result_backend": _url,
    "broker_lease_seconds": _seconds(zero_is_default=True),  # 0 has always meant the default
    "broker_max_deliveries": _integer(),
    "broker_transport_options": _mapping("transport options"),
    "broker_connection_retry_on_startup": _bool,
    "revoked_ttl_seconds": _seconds(),
    "task_default_queue": _text(),
    "task_default_priority": _integer(minimum=0, maximum=9),
    "task_routes": _anything,
    "task_acks_late": _bool,
    "task_ignore_result": _bool,
    "task_always_eager": _bool,
    "task_eager_propagates": _bool,
    "task_store_eager_result": _bool,
    "task_allow_error_cb_on_chord_header": _bool,
    "task_serializer": _text(choices=SERIALIZERS),
    "result_serializer": _text(),
    "accept_content": _names,
    "task_track_started": _bool,
    "task_time_limit": _seconds(optional=True, zero_is_none=True),  # 0: no limit, as before
    "task_soft_time_limit": _seconds(optional=True, zero_is_none=True),
    "task_default_rate_limit": _rate,
    "task_annotations": _anything,
    "result_expires": _expires,
    "result_extended": _bool,
    "worker_concurrency": _integer(),
    "worker_prefetch_multiplier": _integer(minimum=0),
    "worker_shutdown_timeout": _seconds(above=False),
    "worker_send_task_events": _bool,
    "task_send_sent_event": _bool,
    "worker_heartbeat_seconds": _seconds(),
    "events_max": _integer(),
    "worker_pool": _text(),
    "worker_max_tasks_per_child": _integer(optional=True),
    "worker_max_memory_per_child": _integer(optional=True),
    "task_reject_on_worker_lost": _bool,
    "task_acks_on_failure_or_timeout": _bool,
    "worker_hijack_root_logger": _bool,
    "beat_schedule": _mapping("entry name -> entry"),
    "beat_scheduler": _scheduler,
    "beat_max_loop_interval": _seconds(zero_is_default=True),
    "beat_missed": _text(choices=MISSED_POLICIES),
    "beat_missed_after_seconds": _seconds(zero_is_default=True),
    "beat_overlap": _text(choices=OVERLAP_POLICIES),
    "timezone": _timezone,
    "enable_utc": _bool,
    "include": _names,
    "imports": _names,
    "dashboard_user": _text(optional=True),
    "dashboard_password_hash": _text(optional=True),
}

assert _CONVERTERS.keys() == DEFAULTS.keys()


# --- app.conf ----------------------------------------------------------------------------

_versions = itertools.count(1)  # next() is atomic: two threads writing never share a number


class Settings(dict[str, Any]):
    """``app.conf``: a dict whose keys are also attributes.

    Every write takes a new version number, so ``resolved()`` knows when to resolve again.
    A key that is not a setting is logged once (with the nearest setting's name).
    """

    __slots__ = ("_noted", "_resolved", "_version")

    def __init__(self, **overrides: Any) -> None:
        super().__init__({key: _fresh(value) for key, value in DEFAULTS.items()})
        object.__setattr__(self, "_version", next(_versions))
        object.__setattr__(self, "_resolved", None)
        object.__setattr__(self, "_noted", set())
        self.update(overrides)

    def __reduce__(self) -> Any:  # copy and pickle: the same items, and no second warning
        return (_restore, (dict(self), set(self._noted)))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    # --- writes: each one is checked and takes a new version ----------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self._put(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self._put(key, value)

    def __ior__(self, other: Any) -> Settings:  # type: ignore[override,misc]
        self.update(other)
        return self

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._put(key, default)
        return self[key]

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._changed()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def _put(self, key: str, value: Any, origin: str | None = None, quiet: bool = False) -> None:
        dict.__setitem__(self, key, value)
        self._changed()
        if key not in DEFAULTS and not quiet:
            self._note_unknown(key, origin)

    def _changed(self) -> None:
        object.__setattr__(self, "_version", next(_versions))

    def _note_unknown(self, key: Any, origin: str | None) -> None:
        if not isinstance(key, str) or key in self._noted:
            return
        self._noted.add(key)
        shown = origin or key
        if key in IGNORED:
            logger.info("celeriac ignores the setting %s: %s", shown, IGNORED[key])
            return
        if key in OLD_NAMES:
            logger.warning("app.conf[%r] is not read: it is Celery's old name of %r; set %r instead "
                           "(old names are understood in config_from_object)", key, OLD_NAMES[key], OLD_NAMES[key])
            return
        guess = _nearest(key)
        hint = ""
        if guess is not None:
            hint = f"; did you mean {_spelled_like(guess, key, origin)!r}?"
        logger.warning("unknown setting %r%s (celeriac does not read it)", shown, hint)

    # --- reads ---------------------------------------------------------------------------

    def resolved(self) -> ResolvedSettings:
        """``resolve(self)``, cached until the next write."""
        version = self._version
        cached = self._resolved
        if cached is not None and cached[0] == version:
            return cached[1]  # type: ignore[no-any-return]
        settings = resolve(self)
        object.__setattr__(self, "_resolved", (version, settings))
        return settings

    def broker(self) -> str:
        url = self.get("broker_url") or os.environ.get("CELERIAC_BROKER_URL") or DEFAULT_BROKER_URL
        return str(url)

    def result_expires_s(self) -> float | None:
        return _expires("result_expires", self.get("result_expires"))

    def lease_seconds(self) -> float:
        options = self.get("broker_transport_options") or {}
        if "visibility_timeout" in options:
            _warn_visibility_timeout(self.get("broker_lease_seconds"))
        return float(self.get("broker_lease_seconds") or 60.0)

    def load(self, source: Any, namespace: str | None = None) -> None:
        """Read settings from a module, an object or an ``"import.path:attribute"`` string."""
        if isinstance(source, str):
            source = _import_object(source)
        prefix = f"{namespace}_" if namespace else ""
        is_dict = isinstance(source, dict)
        names = source.keys() if is_dict else dir(source)
        for name in names:
            key = None if name.startswith("_") else _setting_key(name, prefix)
            if key is None:
                continue  # not read at all: Django 6.1 warns on reading a deprecated setting
            try:
                value = source[name] if is_dict else getattr(source, name)
            except Exception:  # Django settings raise for unset lazy names
                continue
            # Without a namespace, a module's imports and helpers and an object's methods
            # and properties are lower-case names too: taken, as before, but not warned about.
            quiet = not prefix and not is_dict and key not in DEFAULTS and (
                isinstance(value, types.ModuleType) or callable(value)
                or isinstance(getattr(type(source), name, None), property))
            self._put(key, value, origin=name if name != key else None, quiet=quiet)


def _restore(items: dict[str, Any], noted: set[str]) -> Settings:
    conf = Settings.__new__(Settings)
    dict.update(conf, items)
    object.__setattr__(conf, "_version", next(_versions))
    object.__setattr__(conf, "_resolved", None)
    object.__setattr__(conf, "_noted", noted)
    return conf


def _fresh(value: Any) -> Any:
    """A default's own copy, so that one app's ``conf.beat_schedule[...] = ...`` is not every app's."""
    return value.copy() if isinstance(value, (dict, list)) else value


def _nearest(key: str) -> str | None:
    """The known setting spelled most like ``key``, if any is close."""
    known: Iterable[str] = [*DEFAULTS, *IGNORED]
    found = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.7)
    return found[0] if found else None


def _spelled_like(setting: str, key: str, origin: str | None) -> str:
    """``setting`` as the user would have written it: ``CELERY_BROKER_URL`` for ``CELERY_BROKER_ULR``."""
    if origin and origin.lower().endswith(key) and origin != key:
        return origin[: len(origin) - len(key)] + setting.upper()
    return setting


def _setting_key(name: str, prefix: str) -> str | None:
    if name in OLD_NAMES:
        return OLD_NAMES[name]
    if prefix:
        if not name.startswith(prefix):
            return None
        return name[len(prefix):].lower()
    if name.islower():
        return name
    return None


def _import_object(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def _warn_visibility_timeout(lease_seconds: Any) -> None:
    _log_once(
        "visibility_timeout",
        "broker_transport_options['visibility_timeout'] is ignored: celeriac renews a "
        "lease while a task runs, so long tasks and countdowns never run twice. "
        "Set broker_lease_seconds (now %ss) to choose how soon a dead worker's tasks "
        "come back.", lease_seconds,
    )


_logged: set[str] = set()


def _log_once(key: str, message: str, *args: Any) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.warning(message, *args)
