from django import forms
from django.contrib import admin

from spendplane.admin_base import ReadOnlyAdmin

from .models import (
    AlertEvent,
    LedgerArchive,
    MarginReport,
    ModelRoute,
    PriceOverride,
    Provider,
    ProviderUsage,
    Reconciliation,
    UsageEvent,
    UsageImport,
    UsageRollup,
    WebhookEndpoint,
)


class ProviderForm(forms.ModelForm):
    base_url = forms.URLField(assume_scheme="https")
    api_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave empty to keep the current key."
    )
    usage_api_base_url = forms.URLField(
        assume_scheme="https", required=False, help_text="Where the usage reports are served; empty: the base URL."
    )
    admin_api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Reads the provider's usage and cost reports for the daily reconciliation. "
        "Leave empty to keep the current one.",
    )

    class Meta:
        model = Provider
        fields = [
            "name",
            "kind",
            "base_url",
            "api_key",
            "admin_api_key",
            "usage_api_base_url",
            "connect_timeout_s",
            "read_timeout_s",
            "max_retries",
            "is_active",
        ]

    def _kept(self, name: str) -> str:
        value = self.cleaned_data.get(name)
        if not value and self.instance.pk:
            return getattr(self.instance, name)
        return value

    def clean_api_key(self):
        return self._kept("api_key")

    def clean_admin_api_key(self):
        return self._kept("admin_api_key")


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "base_url", "is_active"]
    list_filter = ["kind", "is_active"]


@admin.register(ModelRoute)
class ModelRouteAdmin(admin.ModelAdmin):
    list_display = ["model", "priority", "provider", "upstream_model"]
    list_filter = ["provider"]
    search_fields = ["model", "upstream_model"]


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "tenant",
        "input_usd_per_mtok",
        "output_usd_per_mtok",
        "cached_input_usd_per_mtok",
        "effective_from",
    ]
    list_filter = ["tenant"]
    search_fields = ["model"]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    """Read-only: the ledger is append-only."""

    list_display = [
        "created_at",
        "tenant",
        "end_user",
        "feature",
        "model",
        "status_code",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
    ]
    list_filter = ["status_code", "endpoint", "usage_source", "stream", "tenant"]
    search_fields = ["request_id", "end_user", "feature", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]
    show_full_result_count = False


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = ["bucket_start", "granularity", "tenant", "model", "feature", "end_user", "requests", "cost_usd"]
    list_filter = ["granularity", "tenant"]
    search_fields = ["model", "feature", "end_user"]
    date_hierarchy = "bucket_start"
    show_full_result_count = False


@admin.register(MarginReport)
class MarginReportAdmin(ReadOnlyAdmin):
    list_display = [
        "period_start",
        "period",
        "tenant",
        "revenue_usd",
        "cost_usd",
        "margin_usd",
        "margin_pct",
        "requests",
    ]
    list_filter = ["period", "tenant"]
    date_hierarchy = "period_start"


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "kind", "state", "message", "delivered_at", "delivery_attempts"]
    list_filter = ["kind", "state", "tenant"]
    search_fields = ["message", "dedupe_key"]
    date_hierarchy = "created_at"


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(assume_scheme="https")
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Leave empty to keep the current secret.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "secret", "is_active"]

    def clean_secret(self):
        value = self.cleaned_data.get("secret")
        if not value and self.instance.pk:
            return self.instance.secret
        if not value:
            raise forms.ValidationError("A secret is required.")
        return value


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "is_active", "created_at"]


@admin.register(Reconciliation)
class ReconciliationAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "provider",
        "model",
        "status",
        "capture_rate",
        "ledger_requests",
        "provider_requests",
        "ledger_cost_usd",
        "provider_cost_usd",
    ]
    list_filter = ["status", "provider"]
    search_fields = ["model", "provider"]
    date_hierarchy = "day"


@admin.register(ProviderUsage)
class ProviderUsageAdmin(ReadOnlyAdmin):
    list_display = ["day", "provider", "model", "requests", "input_tokens", "output_tokens", "cost_usd", "source"]
    list_filter = ["provider", "source"]
    date_hierarchy = "day"


@admin.register(UsageImport)
class UsageImportAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "provider", "first_day", "last_day", "ok", "rows", "error"]
    list_filter = ["provider", "ok"]


@admin.register(LedgerArchive)
class LedgerArchiveAdmin(ReadOnlyAdmin):
    list_display = ["month", "rows", "cost_usd", "path", "bytes", "exported_at", "dropped_at"]
    readonly_fields = ["sha256"]
