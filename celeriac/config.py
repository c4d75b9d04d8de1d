"""Settings, under Celery's names.

``app.conf`` is a dict with attribute access, like Celery's. ``config_from_object``
reads a module, an object or ``"django.conf:settings"``; with ``namespace="CELERY"`` it
takes ``CELERY_BROKER_URL`` as ``broker_url`` and so on, which is Celery's Django
convention. Celery's old upper-case names (``BROKER_URL``, ``CELERY_ALWAYS_EAGER``) are
understood too.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
from typing import Any

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
    "worker_heartbeat_seconds": 2.0,
    "events_max": 10_000,
    "worker_pool": "threads",
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
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERYBEAT_SCHEDULER": "beat_scheduler",
    "CELERYBEAT_MAX_LOOP_INTERVAL": "beat_max_loop_interval",
    "CELERY_ENABLE_UTC": "enable_utc",
    "CELERY_TIMEZONE": "timezone",
    "CELERY_ACKS_LATE": "task_acks_late",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
}


class Settings(dict[str, Any]):
    """``app.conf``: a dict whose keys are also attributes."""

    def __init__(self, **overrides: Any) -> None:
        super().__init__(DEFAULTS)
        self.update(overrides)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def broker(self) -> str:
        url = self.get("broker_url") or os.environ.get("CELERIAC_BROKER_URL") or DEFAULT_BROKER_URL
        return str(url)

    def result_expires_s(self) -> float | None:
        value = self.get("result_expires")
        if value is None:
            return None
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        return float(value)

    def lease_seconds(self) -> float:
        options = self.get("broker_transport_options") or {}
        if "visibility_timeout" in options:
            _log_once(
                "visibility_timeout",
                "broker_transport_options['visibility_timeout'] is ignored: celeriac renews a "
                "lease while a task runs, so long tasks and countdowns never run twice. "
                "Set broker_lease_seconds (now %ss) to choose how soon a dead worker's tasks "
                "come back.", self.get("broker_lease_seconds"),
            )
        return float(self.get("broker_lease_seconds") or 60.0)

    def load(self, source: Any, namespace: str | None = None) -> None:
        """Read settings from a module, an object or an ``"import.path:attribute"`` string."""
        if isinstance(source, str):
            source = _import_object(source)
        prefix = f"{namespace}_" if namespace else ""
        names = source.keys() if isinstance(source, dict) else dir(source)
        for name in names:
            key = None if name.startswith("_") else _setting_key(name, prefix)
            if key is None:
                continue  # not read at all: Django 6.1 warns on reading a deprecated setting
            try:
                value = source[name] if isinstance(source, dict) else getattr(source, name)
            except Exception:  # Django settings raise for unset lazy names
                continue
            self[key] = value


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


_logged: set[str] = set()


def _log_once(key: str, message: str, *args: Any) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.warning(message, *args)
