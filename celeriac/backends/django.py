"""``django://`` result store: results as rows of Django models, visible in the admin.

``result_backend = "django-db"`` (Celery's spelling) or ``"django://"`` uses the default
database; ``"django://<alias>"`` another one of ``DATABASES``. It needs
``"celeriac.contrib.django"`` in ``INSTALLED_APPS``, its migrations applied, and Django set
up in the process (``manage.py celeriac worker`` does that).

The ORM is synchronous: every operation runs through ``sync_to_async`` on asgiref's
thread-sensitive thread, the one Django's own async ORM calls (``aget``, ``aupdate_or_create``)
use, so a worker's tasks and its result writes share one connection and never contend
for SQLite's write lock among themselves. For several worker processes on SQLite, set
``"OPTIONS": {"transaction_mode": "IMMEDIATE"}`` on the database (Django 5.1+) so a
transaction takes the write lock when it begins rather than failing to upgrade to it.

Fencing: a write names the fencing token of the run that produced it; one conditional
UPDATE refuses it when the row holds a higher token (or the same token and a finished
state that an unfinished one would hide). Groups: recording a member locks the group's
``GroupLock`` row, inserts the (group, member) pair under a unique constraint and counts
the pairs, in one transaction; the lock makes concurrent members count one after the
other, so exactly one of them sees the count reach the total.

SQLite and PostgreSQL notify nothing through Django, so ``wait_ready`` polls with a
bounded back-off (5 ms doubling to 250 ms); a write made by this same process wakes its
waiters at once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlparse

import msgspec

from .._notify import Notifier
from ..exceptions import ConfigurationError
from ..message import READY_STATES, GroupProgress, ResultRecord
from ..servers.waiting import wait_for_ready_record

# Django is imported in the functions that use it: this module imports without Django
# (connect() then says what to install), and the models only once Django's apps are loaded.

T = TypeVar("T")

MIN_POLL_S = 0.005
MAX_POLL_S = 0.25
FETCH_CHUNK = 500  # ids per IN (...) query: SQLite allows 999 parameters on old builds
PURGE_EVERY_S = 60.0

# Writes in this process wake waiters in this process at once (keyed by alias and id).
_notifier = Notifier()


class DjangoResultStore:
    def __init__(self, url: str, expires_s: float | None = 86400.0) -> None:
        self.url = url
        self.expires_s = expires_s
        self.using = urlparse(url).netloc or "default"
        self._last_purge_s = 0.0
        self._models: Any = None

    # --- lifecycle ------------------------------------------------------------------

    async def connect(self) -> None:
        try:
            from django.apps import apps  # Django: optional
        except ImportError as exc:
            raise ConfigurationError(
                "the django:// result store needs Django; install it with the django extra: "
                "pip install -e '/path/to/celeriac[django]' from a checkout (see docs/django.md)"
            ) from exc
        if not apps.ready:
            raise ConfigurationError(
                "the django:// result store needs Django set up in this process: run the worker "
                "with 'python manage.py celeriac worker' (or 'celeriac -A celeriac.contrib.django.project "
                "worker' with DJANGO_SETTINGS_MODULE set), or call django.setup() first"
            )
        if not apps.is_installed("celeriac.contrib.django"):
            raise ConfigurationError(
                "the django:// result store keeps results in the celeriac.contrib.django app's "
                "tables: add 'celeriac.contrib.django' to INSTALLED_APPS and run manage.py migrate"
            )
        from ..contrib.django import models  # needs Django's apps loaded

        self._models = models

    async def close(self) -> None:
        from django.db import connections  # Django: optional

        # Only the ORM thread's connections: Django keeps one per thread.
        await self._run(connections.close_all)

    async def _run(self, fn: Callable[[], T]) -> T:
        from asgiref.sync import sync_to_async  # Django: optional

        return await sync_to_async(fn, thread_sensitive=True)()

    @property
    def models(self) -> Any:
        if self._models is None:
            raise ConfigurationError("the django:// result store was used before connect()")
        return self._models

    # --- results --------------------------------------------------------------------

    async def store(self, records: Sequence[ResultRecord]) -> list[str]:
        if not records:
            return []
        from django.db import transaction  # Django: optional

        def apply() -> list[str]:
            self._purge_expired()
            with transaction.atomic(using=self.using):
                return [r.task_id for r in records if not self._write(r)]

        refused = await self._run(apply)
        self._notify(records)
        return refused

    def _write(self, record: ResultRecord) -> bool:
        """Upsert one record unless the row holds a newer run's; False when refused."""
        from django.db import IntegrityError, transaction  # Django: optional
        from django.db.models import Q

        rows = self.models.TaskResult.objects.using(self.using)
        token = record.fencing_token
        if record.state in READY_STATES:
            newer_or_same = Q(fencing_token__lte=token)
        else:  # the same run's late STARTED must not hide its SUCCESS
            newer_or_same = Q(fencing_token__lt=token) | (Q(fencing_token=token) & ~Q(state__in=READY_STATES))
        fields = self._columns(record)
        if rows.filter(newer_or_same, task_id=record.task_id).update(**fields):
            return True
        try:
            with transaction.atomic(using=self.using):  # a savepoint: the row may exist
                rows.create(task_id=record.task_id, **fields)
            return True
        except IntegrityError:
            # The row exists (perhaps created by another writer since the UPDATE): one
            # more conditional UPDATE decides against what it now holds.
            return bool(rows.filter(newer_or_same, task_id=record.task_id).update(**fields))

    def _columns(self, record: ResultRecord) -> dict[str, Any]:
        return {
            "state": record.state,
            "task_name": record.name,
            "fencing_token": record.fencing_token,
            "worker": record.worker,
            "record": msgspec.to_builtins(record),
            "date_done": _datetime(record.date_done_ms),
            "expires": self._expires_at(),
        }

    def _expires_at(self) -> dt.datetime | None:
        if not self.expires_s:
            return None
        return _now() + dt.timedelta(seconds=self.expires_s)

    def _purge_expired(self) -> None:
        now_s = time.monotonic()
        if now_s - self._last_purge_s < PURGE_EVERY_S:
            return
        self._last_purge_s = now_s
        now = _now()
        m = self.models
        for model in (m.TaskResult, m.GroupMembership, m.GroupLock, m.SavedGroup):
            model.objects.using(self.using).filter(expires__lt=now).delete()

    def _live(self) -> Any:
        from django.db.models import Q  # Django: optional

        now = _now()
        return self.models.TaskResult.objects.using(self.using).filter(
            Q(expires__isnull=True) | Q(expires__gt=now)
        )

    async def fetch(self, task_id: str) -> ResultRecord | None:
        return (await self.fetch_many([task_id])).get(task_id)

    async def fetch_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        ids = list(task_ids)

        def query() -> list[Any]:
            found: list[Any] = []
            for start in range(0, len(ids), FETCH_CHUNK):
                chunk = ids[start : start + FETCH_CHUNK]
                found += self._live().filter(task_id__in=chunk).values_list("record", flat=True)
            return found

        records = [msgspec.convert(raw, ResultRecord) for raw in await self._run(query)]
        return {r.task_id: r for r in records}

    async def wait_ready(self, task_id: str, timeout_s: float | None) -> ResultRecord | None:
        return await wait_for_ready_record(lambda: self.fetch(task_id), _notifier, self._key(task_id), timeout_s,
                                           (MIN_POLL_S, MAX_POLL_S))

    async def forget(self, task_id: str) -> None:
        rows = self.models.TaskResult.objects.using(self.using)
        await self._run(lambda: rows.filter(task_id=task_id).delete())

    # --- groups ---------------------------------------------------------------------

    async def record_group_member(
        self, group_id: str, member_id: str, total: int, record: ResultRecord
    ) -> GroupProgress:
        from django.db import transaction  # Django: optional

        m = self.models

        def apply() -> GroupProgress:
            expires = self._expires_at()
            with transaction.atomic(using=self.using):
                self._write(record)
                # Lock first: without it two last members on PostgreSQL could each count
                # before the other commits, and neither would see the group complete.
                m.GroupLock.objects.using(self.using).select_for_update().get_or_create(
                    group_id=group_id, defaults={"expires": expires}
                )
                _, is_new = m.GroupMembership.objects.using(self.using).get_or_create(
                    group_id=group_id, member_id=member_id, defaults={"expires": expires}
                )
                after = m.GroupMembership.objects.using(self.using).filter(group_id=group_id).count()
            before = after - 1 if is_new else after
            return GroupProgress(after, total, before < total <= after)

        progress = await self._run(apply)
        self._notify([record])
        return progress

    async def save_group(self, group_id: str, member_ids: Sequence[str]) -> None:
        groups = self.models.SavedGroup.objects.using(self.using)
        ids = list(member_ids)
        await self._run(lambda: groups.update_or_create(
            group_id=group_id, defaults={"member_ids": ids, "expires": self._expires_at()}
        ))

    async def restore_group(self, group_id: str) -> list[str] | None:
        from django.db.models import Q  # Django: optional

        now = _now()
        groups = self.models.SavedGroup.objects.using(self.using).filter(
            Q(expires__isnull=True) | Q(expires__gt=now), group_id=group_id
        )
        member_ids = await self._run(lambda: groups.values_list("member_ids", flat=True).first())
        return None if member_ids is None else [str(m) for m in member_ids]

    # --- wake-ups -------------------------------------------------------------------

    def _key(self, task_id: str) -> str:
        return f"{self.using}:{task_id}"

    def _notify(self, records: Sequence[ResultRecord]) -> None:
        for record in records:
            if record.state in READY_STATES:
                _notifier.notify(self._key(record.task_id))


def _now() -> dt.datetime:
    from django.utils import timezone  # Django: optional

    return timezone.now()  # type: ignore[no-any-return]  # aware, or naive local time with USE_TZ = False


def _datetime(epoch_ms: int | None) -> dt.datetime | None:
    if epoch_ms is None:
        return None
    from django.conf import settings  # Django: optional
    from django.utils import timezone

    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)
