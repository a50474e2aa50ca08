from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from spendplane.admin_base import ReadOnlyAdmin

from . import services
from .models import ApiKey, AuditEntry, Budget, CapChange, Credit, Plan, RateLimit, RevenueEntry, Tenant
from .revenue import RevenueError, RevenueInput, revenue_entry_upsert


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


class BudgetInline(admin.TabularInline):
    model = Budget
    extra = 0
    fields = ["scope", "subject", "period", "limit_usd", "hard", "raised_limit_usd", "raised_until"]
    verbose_name_plural = "Budgets (end user / feature subject * = every one; key subject = key id)"


class RateLimitInline(admin.TabularInline):
    model = RateLimit
    extra = 0
    fields = ["scope", "subject", "rpm_limit", "tpm_limit", "max_concurrency"]


class CapChangeInline(admin.TabularInline):
    model = CapChange
    extra = 0
    fields = ["created_at", "actor_label", "what", "before", "after", "reason"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-created_at"]
    verbose_name_plural = "Cap history"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "external_id", "plan", "status", "effective_budget", "usage_link", "created_at"]
    readonly_fields = ["usage_link"]
    list_filter = ["status", "plan"]
    search_fields = ["name", "external_id"]
    list_select_related = ["plan"]
    inlines = [BudgetInline, RateLimitInline, ApiKeyInline, CapChangeInline]
    actions = ["suspend", "resume", "reset_month", "rotate_keys"]
    fieldsets = [
        (None, {"fields": ["name", "external_id", "plan", "status", "timezone", "usage_link"]}),
        (
            "Limits (empty: the plan's value)",
            {"fields": ["monthly_budget_usd", "rpm_limit", "tpm_limit", "max_concurrency"]},
        ),
        ("Revenue", {"fields": ["revenue_source", "billing_customer_id", "monthly_price_override_usd"]}),
        (
            "Prompt-injection guard (empty: the plan's)",
            {"fields": ["guard_mode", "guard_block_threshold", "guard_sanitize_threshold"]},
        ),
    ]

    @admin.display(description="Monthly budget")
    def effective_budget(self, tenant: Tenant):
        value = tenant.effective_cap("monthly_budget_usd")
        return "none" if value is None else f"${value:.2f}"

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        services.tenant_update(tenant=Tenant.objects.get(pk=obj.pk), actor=request.user, **fields)

    def save_formset(self, request, form, formset, change):
        if formset.model not in (Budget, RateLimit):
            return super().save_formset(request, form, formset, change)
        for instance in formset.save(commit=False):
            if isinstance(instance, Budget):
                services.budget_save(budget=instance, actor=request.user)
            else:
                services.rate_limit_save(limit=instance, actor=request.user)
        for instance in formset.deleted_objects:
            if isinstance(instance, Budget):
                services.budget_delete(budget=instance, actor=request.user)
            else:
                instance.delete()
        return None

    @admin.action(description="Suspend selected tenants", permissions=["change"])
    def suspend(self, request, queryset):
        for tenant in queryset:
            services.tenant_suspend(tenant=tenant, actor=request.user, reason="admin action")
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).")

    @admin.action(description="Resume selected tenants", permissions=["change"])
    def resume(self, request, queryset):
        for tenant in queryset:
            services.tenant_resume(tenant=tenant, actor=request.user, reason="admin action")
        self.message_user(request, f"Resumed {queryset.count()} tenant(s).")

    @admin.action(description="Reset this month's tenant spend (forgive it)", permissions=["change"])
    def reset_month(self, request, queryset):
        for tenant in queryset:
            services.budget_period_reset(tenant=tenant, actor=request.user, reason="admin action")
        self.message_user(request, f"Reset the month for {queryset.count()} tenant(s).")

    @admin.action(description="Rotate the API keys of selected tenants", permissions=["change"])
    def rotate_keys(self, request, queryset):
        for tenant in queryset:
            for key in tenant.api_keys.filter(revoked_at__isnull=True):
                new_key, raw = services.api_key_rotate(key=key)
                messages.warning(request, f"{tenant} key '{new_key.name}': {raw} (copy it now; it is not shown again)")

    @admin.display(description="Ledger")
    def usage_link(self, tenant: Tenant):
        url = reverse("admin:metering_usageevent_changelist") + f"?tenant__id__exact={tenant.pk}"
        dashboard = reverse("dashboard:tenant", args=[tenant.pk])
        return format_html('<a href="{}">usage events</a> · <a href="{}">dashboard</a>', url, dashboard)


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


@admin.register(CapChange)
class CapChangeAdmin(ReadOnlyAdmin):
    """Read-only: the record of who changed which cap."""

    list_display = ["created_at", "tenant", "actor_label", "what", "before", "after", "reason"]
    list_filter = ["tenant", "actor_label"]
    search_fields = ["what", "reason", "tenant__name"]
    date_hierarchy = "created_at"


@admin.register(Credit)
class CreditAdmin(admin.ModelAdmin):
    list_display = ["day", "tenant", "amount_usd", "note"]
    list_filter = ["tenant"]
    date_hierarchy = "day"


_REVENUE_FIELDS = (
    "tenant",
    "source",
    "external_id",
    "period_start",
    "period_end",
    "amount_usd",
    "currency",
    "description",
)


def _revenue_input(entry: RevenueEntry, values: dict | None = None) -> RevenueInput:
    values = values or {}
    return RevenueInput(**{name: values.get(name, getattr(entry, name, None)) for name in _REVENUE_FIELDS})


class RevenueEntryForm(forms.ModelForm):
    class Meta:
        model = RevenueEntry
        fields = _REVENUE_FIELDS

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                _revenue_input(self.instance, cleaned).check()
            except RevenueError as error:
                raise forms.ValidationError(str(error)) from None
        return cleaned


@admin.register(RevenueEntry)
class RevenueEntryAdmin(admin.ModelAdmin):
    """Invoiced revenue. Entries come from the billing system (API, CSV import, Stripe sync); one
    added or corrected here goes through the same upsert, so a correction keeps its history."""

    list_display = ["external_id", "tenant", "source", "period_start", "period_end", "amount_usd", "updated_at"]
    list_filter = ["source", "tenant"]
    search_fields = ["external_id", "description", "tenant__name", "tenant__external_id"]
    date_hierarchy = "period_start"
    list_select_related = ["tenant"]
    readonly_fields = ["history", "created_at", "updated_at"]
    form = RevenueEntryForm

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "source", "external_id"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        obj.pk = revenue_entry_upsert(_revenue_input(obj), actor=request.user.get_username())[0].pk


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_label", "action", "object_type", "object_repr", "remote_addr", "via"]
    list_filter = ["action", "object_type", "actor_label"]
    search_fields = ["object_repr", "object_id", "actor_label", "via"]
    date_hierarchy = "at"
