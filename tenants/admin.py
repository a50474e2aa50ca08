from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .models import ApiKey, Plan, Tenant


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "monthly_price_usd", "monthly_budget_usd", "rpm_limit", "tpm_limit", "max_concurrency"]
    search_fields = ["name"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "external_id", "plan", "status", "usage_link", "created_at"]
    list_filter = ["status", "plan"]
    search_fields = ["name", "external_id"]
    list_select_related = ["plan"]
    inlines = [ApiKeyInline]
    fieldsets = [
        (None, {"fields": ["name", "external_id", "plan", "status", "timezone"]}),
        (
            "Limits (empty: the plan's value)",
            {"fields": ["monthly_budget_usd", "rpm_limit", "tpm_limit", "max_concurrency"]},
        ),
        ("Revenue", {"fields": ["monthly_price_override_usd"]}),
    ]

    @admin.display(description="Ledger")
    def usage_link(self, tenant: Tenant):
        url = reverse("admin:metering_usageevent_changelist") + f"?tenant__id__exact={tenant.pk}"
        return format_html('<a href="{}">usage events</a>', url)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at", "tenant"]
    search_fields = ["name", "prefix", "tenant__name"]
    readonly_fields = ["prefix", "created_at", "revoked_at", "last_used_at"]
    fields = ["tenant", "name", "expires_at", "prefix", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = services.api_key_create(tenant=obj.tenant, name=obj.name, expires_at=obj.expires_at)
        obj.pk = key.pk
        obj.prefix, obj.key_hash = key.prefix, key.key_hash
        messages.warning(request, f"New key for {obj.tenant}: {raw} (copy it now; it is not shown again)")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            services.api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")
