from django.contrib import admin

from .models import CheckedCrn


@admin.register(CheckedCrn)
class CheckedCrnAdmin(admin.ModelAdmin):
    list_display = ("registration_number", "status", "message", "checked_at")
    list_filter = ("status", "checked_at")
    search_fields = ("registration_number", "message")
    date_hierarchy = "checked_at"
    list_per_page = 100
