"""The admin: task results (filterable by state, task name and date) and periodic tasks."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from ..._bridge import run_sync
from ...beat.entries import BeatConfigError
from ...beat.ops import send_now
from .beat_scheduler import entry_of, note_fires
from .discovery import load_project_app
from .models import PeriodicTask, SavedGroup, TaskResult


@admin.register(TaskResult)
class TaskResultAdmin(admin.ModelAdmin):  # type: ignore[misc]  # Django ships no type hints
    list_display = ("task_id", "task_name", "state", "worker", "date_done")
    list_filter = ("state", "task_name", "date_done")
    search_fields = ("task_id", "task_name")
    date_hierarchy = "date_done"
    readonly_fields = ("task_id", "task_name", "state", "fencing_token", "worker", "date_done",
                       "expires", "date_created", "pretty_record")
    exclude = ("record",)
    list_per_page = 100

    @admin.display(description="record")  # type: ignore[untyped-decorator]
    def pretty_record(self, obj: TaskResult) -> Any:
        return format_html("<pre>{}</pre>", json.dumps(obj.record, indent=2, ensure_ascii=False))

    def has_add_permission(self, request: Any) -> bool:
        return False  # results come from workers

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(SavedGroup)
class SavedGroupAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("group_id", "member_count", "date_created", "expires")
    search_fields = ("group_id",)
    readonly_fields = ("group_id", "member_ids", "expires", "date_created")

    @admin.display(description="tasks")  # type: ignore[untyped-decorator]
    def member_count(self, obj: SavedGroup) -> int:
        return len(obj.member_ids)

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(admin.ModelAdmin):  # type: ignore[misc]
    """Beat entries for ``celeriac beat --scheduler django``: edits reach every beat within seconds."""

    list_display = ("name", "task", "schedule", "enabled", "last_run_at", "total_run_count")
    list_filter = ("enabled", "one_off", "task")
    search_fields = ("name", "task", "description")
    readonly_fields = ("last_run_at", "last_task_id", "total_run_count", "date_changed")
    actions = ["enable", "disable", "run_now"]
    fieldsets = (
        (None, {"fields": ("name", "task", "enabled", "description")}),
        ("Schedule", {
            "fields": ("every", "period", "crontab", "crontab_timezone", "start_time", "one_off"),
            "description": "An interval (every and period) or a crontab, not both. Intervals count from "
                           "1970-01-01 UTC, so every beat fires the same ticks.",
        }),
        ("Arguments", {"fields": ("args", "kwargs")}),
        ("Sending", {"fields": ("queue", "priority", "expire_seconds", "missed", "overlap")}),
        ("Last run", {"fields": ("last_run_at", "last_task_id", "total_run_count", "date_changed")}),
    )

    @admin.display(description="schedule")  # type: ignore[untyped-decorator]
    def schedule(self, obj: PeriodicTask) -> str:
        return str(obj.schedule_words())

    @admin.action(description="Enable selected periodic tasks")  # type: ignore[untyped-decorator]
    def enable(self, request: Any, queryset: Any) -> None:
        self._switch(request, queryset, True)

    @admin.action(description="Disable selected periodic tasks")  # type: ignore[untyped-decorator]
    def disable(self, request: Any, queryset: Any) -> None:
        self._switch(request, queryset, False)

    def _switch(self, request: Any, queryset: Any, enabled: bool) -> None:
        # date_changed moves (update() would leave it): every beat reloads, and ticks
        # while the entry was off are not taken for missed ones.
        count = queryset.update(enabled=enabled, date_changed=timezone.now())
        self.message_user(request, f"{'enabled' if enabled else 'disabled'} {count} periodic tasks")

    @admin.action(description="Run selected periodic tasks now")  # type: ignore[untyped-decorator]
    def run_now(self, request: Any, queryset: Any) -> None:
        app = load_project_app()
        assert app is not None  # required=True raises instead
        sent = []
        for row in queryset:
            try:
                fire = run_sync(send_now(app, entry_of(app, row)))
            except BeatConfigError as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            note_fires([fire])
            sent.append(f"{row.name} ({fire.task_id})")
        if sent:
            self.message_user(request, f"sent {', '.join(sent)}")
