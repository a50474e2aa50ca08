from django import forms
from django.contrib import admin

from .models import ModelRoute, PriceOverride, Provider, UsageEvent


class ProviderForm(forms.ModelForm):
    base_url = forms.URLField(assume_scheme="https")
    api_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave empty to keep the current key."
    )

    class Meta:
        model = Provider
        fields = ["name", "kind", "base_url", "api_key", "connect_timeout_s", "read_timeout_s", "is_active"]

    def clean_api_key(self):
        value = self.cleaned_data.get("api_key")
        if not value and self.instance.pk:
            return self.instance.api_key
        return value


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "base_url", "is_active"]
    list_filter = ["kind", "is_active"]


@admin.register(ModelRoute)
class ModelRouteAdmin(admin.ModelAdmin):
    list_display = ["model", "provider", "upstream_model"]
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
class UsageEventAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
