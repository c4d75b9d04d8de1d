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
