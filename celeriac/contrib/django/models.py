"""The ``django://`` result store's tables (``result_backend = "django-db"``).

``TaskResult`` holds one row per task id: the whole result record as celeriac stores it
(``record``), plus the columns the admin filters on. Group bookkeeping mirrors the other
stores: ``GroupMembership`` is the set of finished members of a chord/group (a unique
pair, so a member that runs twice counts once), ``GroupLock`` is the row that serialises
the members' "record and count" steps, and ``SavedGroup`` is what ``GroupResult.save()``
keeps for ``GroupResult.restore()``.
"""

from __future__ import annotations

from django.db import models

from ...message import FAILURE, PENDING, RECEIVED, RETRY, REVOKED, STARTED, SUCCESS
from .beat_scheduler import schedule_of, validate_row

STATE_CHOICES = [(state, state) for state in (PENDING, RECEIVED, STARTED, RETRY, SUCCESS, FAILURE, REVOKED)]


class TaskResult(models.Model):  # type: ignore[misc]  # Django ships no type hints
    task_id = models.CharField("task id", max_length=255, unique=True)
    state = models.CharField(max_length=16, choices=STATE_CHOICES, db_index=True)
    task_name = models.CharField("task name", max_length=255, null=True, blank=True, db_index=True)
    fencing_token = models.BigIntegerField(
        default=0, help_text="The delivery count of the run that wrote this; lower tokens are refused."
    )
    worker = models.CharField(max_length=255, null=True, blank=True)
    record = models.JSONField(help_text="The whole result record, as celeriac stores it.")
    date_done = models.DateTimeField("date done", null=True, blank=True, db_index=True)
    expires = models.DateTimeField(null=True, blank=True, db_index=True)
    date_created = models.DateTimeField("date created", auto_now_add=True)

    class Meta:
        verbose_name = "task result"
        verbose_name_plural = "task results"
        ordering = ["-date_done", "-id"]

    def __str__(self) -> str:
        return f"{self.task_name or 'task'}[{self.task_id}] {self.state}"


class GroupMembership(models.Model):  # type: ignore[misc]
    group_id = models.CharField(max_length=255, db_index=True)
    member_id = models.CharField(max_length=255)
    expires = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = "finished group member"
        constraints = [
            models.UniqueConstraint(fields=["group_id", "member_id"], name="celeriac_group_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.group_id}: {self.member_id}"


class GroupLock(models.Model):  # type: ignore[misc]
    """Locked (``SELECT ... FOR UPDATE``) while a member is recorded, so counts never interleave."""

    group_id = models.CharField(max_length=255, unique=True)
    expires = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return str(self.group_id)


class SavedGroup(models.Model):  # type: ignore[misc]
    group_id = models.CharField(max_length=255, unique=True)
    member_ids = models.JSONField()
    expires = models.DateTimeField(null=True, blank=True, db_index=True)
    date_created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "saved group"

    def __str__(self) -> str:
        return f"{self.group_id} ({len(self.member_ids)} tasks)"


class PeriodicTask(models.Model):  # type: ignore[misc]
    """A beat entry kept in the database, read by ``celeriac beat --scheduler django``.

    Give an interval (``every`` and ``period``) or a ``crontab`` expression. Every running
    beat picks up an edit within ``beat_max_loop_interval`` (5 s); ticks before the edit
    never count as missed.
    """

    PERIODS = [("seconds", "seconds"), ("minutes", "minutes"), ("hours", "hours"), ("days", "days")]
    MISSED = [("run_once", "run the latest missed tick once"), ("skip", "skip missed ticks")]
    OVERLAP = [("allow", "always send"), ("skip", "skip a tick while the previous run is unfinished")]

    name = models.CharField(max_length=200, unique=True, help_text="Unique; names the entry in logs and the CLI.")
    task = models.CharField(max_length=200, help_text="The registered task name, e.g. proj.tasks.cleanup.")
    every = models.FloatField(null=True, blank=True, help_text="Interval: run every this many periods.")
    period = models.CharField(max_length=10, choices=PERIODS, default="seconds", blank=True)
    crontab = models.CharField(
        max_length=200, blank=True,
        help_text="Crontab: minute hour day-of-month month day-of-week, e.g. '30 2 * * *' or '*/15 * * * mon-fri'.")
    crontab_timezone = models.CharField(max_length=64, blank=True,
                                        help_text="The crontab's zone, e.g. Europe/Berlin; blank: the app's timezone.")
    args = models.JSONField(default=list, blank=True, help_text='Positional arguments, a JSON list: ["a", 1].')
    kwargs = models.JSONField(default=dict, blank=True, help_text='Keyword arguments, a JSON object: {"a": 1}.')
    queue = models.CharField(max_length=200, blank=True, help_text="Blank: the task's own routing.")
    priority = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0-9, 9 runs first.")
    expire_seconds = models.FloatField(null=True, blank=True,
                                       help_text="A run not started this long after its tick is not run.")
    one_off = models.BooleanField(default=False, help_text="Run once, at the first tick, then switch off.")
    start_time = models.DateTimeField(null=True, blank=True, help_text="No tick before this.")
    enabled = models.BooleanField(default=True)
    missed = models.CharField(max_length=10, choices=MISSED, default="run_once",
                              help_text="What to do about ticks no beat could send (no beat was running).")
    overlap = models.CharField(max_length=10, choices=OVERLAP, default="allow")
    description = models.TextField(blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False,
                                       help_text="The fire time of the last tick sent (or of the last run by hand).")
    last_task_id = models.CharField(max_length=255, blank=True, editable=False)
    total_run_count = models.PositiveIntegerField(default=0, editable=False)
    date_changed = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "periodic task"
        verbose_name_plural = "periodic tasks"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.schedule_words()}"

    def schedule_words(self) -> str:
        try:
            return schedule_of(self).describe()
        except Exception as exc:  # shown in the admin's list: never fail the page
            return f"invalid: {exc}"

    def clean(self) -> None:
        validate_row(self)
