from django.contrib import admin

from spendplane.admin_base import ReadOnlyAdmin

from .models import GuardEvent


@admin.register(GuardEvent)
class GuardEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "action", "role", "score", "rules", "excerpt"]
    list_filter = ["action", "role", "tenant"]
    search_fields = ["request_id", "excerpt"]
    date_hierarchy = "created_at"
