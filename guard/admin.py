from django.contrib import admin

from .models import GuardEvent


@admin.register(GuardEvent)
class GuardEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "action", "role", "score", "rules", "excerpt"]
    list_filter = ["action", "role", "tenant"]
    search_fields = ["request_id", "excerpt"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
