"""Management API: providers, routes, price overrides and the usage ledger."""

from __future__ import annotations

import django_filters
from rest_framework import mixins, serializers, viewsets

from spendplane.pagination import LedgerPagination

from .models import ModelRoute, PriceOverride, Provider, UsageEvent


class ProviderSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(write_only=True, required=False, allow_blank=True, style={"input_type": "password"})
    has_api_key = serializers.SerializerMethodField()

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "api_key",
            "has_api_key",
            "connect_timeout_s",
            "read_timeout_s",
            "is_active",
            "created_at",
        ]

    def get_has_api_key(self, provider: Provider) -> bool:
        return bool(provider.api_key)


class ModelRouteSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelRoute
        fields = ["id", "model", "provider", "upstream_model", "created_at"]


class PriceOverrideSerializer(serializers.ModelSerializer):
    class Meta:
        model = PriceOverride
        fields = [
            "id",
            "model",
            "tenant",
            "input_usd_per_mtok",
            "output_usd_per_mtok",
            "cached_input_usd_per_mtok",
            "cache_write_usd_per_mtok",
            "effective_from",
            "created_at",
        ]

    def validate(self, attrs):
        for field in (
            "input_usd_per_mtok",
            "output_usd_per_mtok",
            "cached_input_usd_per_mtok",
            "cache_write_usd_per_mtok",
        ):
            value = attrs.get(field)
            if value is not None and value < 0:
                raise serializers.ValidationError({field: "Must not be negative."})
        return attrs


class UsageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageEvent
        fields = [
            "id",
            "request_id",
            "tenant",
            "api_key",
            "end_user",
            "feature",
            "endpoint",
            "model",
            "provider",
            "stream",
            "prompt_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "usage_source",
            "priced",
            "cost_usd",
            "input_usd_per_mtok",
            "output_usd_per_mtok",
            "cached_input_usd_per_mtok",
            "cache_write_usd_per_mtok",
            "price_source",
            "status_code",
            "error_type",
            "latency_ms",
            "upstream_latency_ms",
            "ttft_ms",
            "created_at",
        ]


class UsageEventFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = UsageEvent
        fields = ["tenant", "end_user", "feature", "model", "status_code", "request_id", "endpoint", "usage_source"]


class ProviderViewSet(viewsets.ModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = ProviderSerializer
    filterset_fields = ["kind", "is_active"]


class ModelRouteViewSet(viewsets.ModelViewSet):
    queryset = ModelRoute.objects.select_related("provider")
    serializer_class = ModelRouteSerializer
    filterset_fields = ["provider", "model"]


class PriceOverrideViewSet(viewsets.ModelViewSet):
    queryset = PriceOverride.objects.all()
    serializer_class = PriceOverrideSerializer
    filterset_fields = ["model", "tenant"]


class UsageEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The append-only ledger; newest first, cursor-paginated."""

    queryset = UsageEvent.objects.all()
    serializer_class = UsageEventSerializer
    filterset_class = UsageEventFilter
    pagination_class = LedgerPagination
