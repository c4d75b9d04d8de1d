"""The admin: task results, filterable by state, task name and date."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from .models import SavedGroup, TaskResult


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
