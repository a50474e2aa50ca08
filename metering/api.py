"""Management API: providers, routes, price overrides and the usage ledger."""

from __future__ import annotations

import csv
import io
from datetime import date

import django_filters
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, renderers, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from spendplane.filters import UtcDateTimeFilter
from spendplane.pagination import LedgerPagination

from .margins import Margin, margins_between, month_range, to_date
from .models import AlertEvent, ModelRoute, PriceOverride, Provider, Reconciliation, UsageEvent, WebhookEndpoint
from .pricing import usd_str
from .reconciliation import STORED_FIELDS


class ProviderSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(write_only=True, required=False, allow_blank=True, style={"input_type": "password"})
    has_api_key = serializers.SerializerMethodField()
    admin_api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        style={"input_type": "password"},
        help_text="Reads the provider's usage and cost reports (reconciliation); never returned.",
    )
    has_admin_api_key = serializers.SerializerMethodField()

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "api_key",
            "has_api_key",
            "admin_api_key",
            "has_admin_api_key",
            "usage_api_base_url",
            "connect_timeout_s",
            "read_timeout_s",
            "max_retries",
            "is_active",
            "created_at",
        ]

    def get_has_api_key(self, provider: Provider) -> bool:
        return bool(provider.api_key)

    def get_has_admin_api_key(self, provider: Provider) -> bool:
        return bool(provider.admin_api_key)


class ModelRouteSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelRoute
        fields = ["id", "model", "provider", "upstream_model", "priority", "created_at"]


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
            "upstream_model",
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
            "upstream_attempts",
            "ttft_ms",
            "created_at",
        ]


class UsageEventFilter(django_filters.FilterSet):
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = UsageEvent
        fields = [
            "tenant",
            "end_user",
            "feature",
            "model",
            "provider",
            "status_code",
            "request_id",
            "endpoint",
            "usage_source",
        ]


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


class CSVRenderer(renderers.BaseRenderer):
    """`?format=csv`: the same rows as the JSON `results`, flattened."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        rows = data.get("results", data) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            rows = [rows]
        buffer = io.StringIO()
        columns = [c for c in (rows[0].keys() if rows else []) if not isinstance(rows[0][c], list | dict)]
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().encode()


def _margin_row(m: Margin, breakdown: set[str]) -> dict:
    row = {
        "tenant": m.tenant_id,
        "tenant_name": m.tenant_name,
        "from": m.start.isoformat(),
        "to": m.end.isoformat(),
        "revenue_usd": usd_str(m.revenue_usd),
        "cost_usd": usd_str(m.cost_usd),
        "margin_usd": usd_str(m.margin_usd),
        "margin_pct": _str_or_none(m.margin_pct),
        "requests": m.requests,
        "tokens": m.tokens,
        # Columns after this line came later: a CSV reader keyed on position keeps working.
        "revenue_source": m.revenue_source,
        "active_users": m.active_users,
        "cost_per_request_usd": usd_str(m.cost_per_request),
        "cost_per_active_user_usd": usd_str(m.cost_per_active_user),
        "cost_share_pct": _str_or_none(m.cost_share_pct),
        "projected_revenue_usd": usd_str(m.projected_revenue_usd),
        "projected_cost_usd": usd_str(m.projected_cost_usd),
        "projected_margin_usd": usd_str(m.projected_margin_usd),
    }
    if "model" in breakdown:
        row["by_model"] = [{**r, "cost_usd": usd_str(r["cost_usd"])} for r in m.by_model]
    if "feature" in breakdown:
        row["by_feature"] = [
            {
                "feature": r["feature"],
                "requests": r["requests"],
                "tokens": r["tokens"],
                "cost_usd": usd_str(r["cost_usd"]),
                "active_users": r["active_users"],
                "cost_per_request_usd": usd_str(r["cost_per_request"]),
                "cost_per_active_user_usd": usd_str(r["cost_per_active_user"]),
            }
            for r in m.by_feature
        ]
    return row


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


class MarginsView(APIView):
    """Revenue, AI cost and margin per tenant for `?period=YYYY-MM` or `?from=&to=` (UTC days,
    inclusive); `?by=model,feature` adds breakdowns; `?tenant=` narrows; `?format=csv` exports."""

    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, description="YYYY-MM"),
            OpenApiParameter("from", str, description="YYYY-MM-DD"),
            OpenApiParameter("to", str, description="YYYY-MM-DD"),
            OpenApiParameter("by", str, description="model, feature or both, comma-separated"),
            OpenApiParameter("tenant", int),
            OpenApiParameter("timezone", str, description="utc (default) or tenant: days in each tenant's zone"),
        ],
        responses=inline_serializer(
            "Margins",
            {
                "count": serializers.IntegerField(),
                "results": inline_serializer(
                    "Margin",
                    {
                        "tenant": serializers.IntegerField(),
                        "revenue_usd": serializers.CharField(),
                        "revenue_source": serializers.ChoiceField(choices=["plan", "invoiced"]),
                        "cost_usd": serializers.CharField(),
                        "margin_usd": serializers.CharField(),
                        "margin_pct": serializers.CharField(allow_null=True),
                        "requests": serializers.IntegerField(),
                        "tokens": serializers.IntegerField(),
                        "active_users": serializers.IntegerField(),
                        "cost_per_request_usd": serializers.CharField(allow_null=True),
                        "cost_per_active_user_usd": serializers.CharField(allow_null=True),
                        "cost_share_pct": serializers.CharField(allow_null=True),
                        "projected_revenue_usd": serializers.CharField(allow_null=True),
                        "projected_cost_usd": serializers.CharField(allow_null=True),
                        "projected_margin_usd": serializers.CharField(allow_null=True),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request):
        params = request.query_params
        try:
            if params.get("from") or params.get("to"):
                start = date.fromisoformat(params["from"])
                end = date.fromisoformat(params.get("to") or params["from"])
            else:
                start, end = month_range(params.get("period") or timezone.now().strftime("%Y-%m"))
        except (KeyError, ValueError):
            raise ValidationError({"period": "Use period=YYYY-MM, or from=YYYY-MM-DD&to=YYYY-MM-DD."}) from None
        period_end = end
        start, end = to_date(start, end, timezone.now().date())
        if end < start or (end - start).days > 366:
            raise ValidationError({"to": "'to' must follow 'from' by at most a year."})
        breakdown = {part.strip() for part in params.get("by", "").split(",") if part.strip()}
        if breakdown - {"model", "feature"}:
            raise ValidationError({"by": "Use model, feature or both."})
        tenant_ids = None
        if params.get("tenant"):
            if not params["tenant"].isdigit():
                raise ValidationError({"tenant": "Must be a tenant id."})
            tenant_ids = [int(params["tenant"])]
        zone = params.get("timezone", "utc")
        if zone not in ("utc", "tenant"):
            raise ValidationError({"timezone": "Use utc (the default) or tenant (each tenant's own days)."})
        margins = margins_between(
            start,
            end,
            tenant_ids=tenant_ids,
            breakdown=bool(breakdown),
            local_time=zone == "tenant",
            period_end=period_end,
            users=True,
        )
        rows = [_margin_row(m, breakdown) for m in margins]
        return Response({"count": len(rows), "from": start.isoformat(), "to": end.isoformat(), "results": rows})


class AlertEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvent
        fields = ["id", "tenant", "kind", "state", "message", "data", "created_at", "delivered_at", "delivery_attempts"]


class AlertEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = AlertEvent.objects.all()
    serializer_class = AlertEventSerializer
    filterset_fields = ["tenant", "kind", "state"]


class WebhookEndpointSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(write_only=True, help_text="Signs each delivery (HMAC-SHA256); not shown again.")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "secret", "is_active", "created_at"]


class WebhookEndpointViewSet(viewsets.ModelViewSet):
    queryset = WebhookEndpoint.objects.order_by("id")
    serializer_class = WebhookEndpointSerializer


class ReconciliationSerializer(serializers.ModelSerializer):
    ledger_events_url = serializers.SerializerMethodField(help_text="The ledger rows behind this row.")

    class Meta:
        model = Reconciliation
        fields = ["id", "provider", "day", "model", *STORED_FIELDS, "computed_at", "ledger_events_url"]

    def get_ledger_events_url(self, row: Reconciliation) -> str:
        return reconciliation_ledger_url(row)


def reconciliation_ledger_url(row: Reconciliation) -> str:
    """The usage-events API filtered to the provider's day (and model, where the ledger has one name)."""
    from datetime import timedelta
    from urllib.parse import urlencode

    params = {
        "provider": row.provider,
        "since": f"{row.day.isoformat()}T00:00:00Z",
        "until": f"{(row.day + timedelta(days=1)).isoformat()}T00:00:00Z",
    }
    if len(row.ledger_models) == 1:
        params["model"] = row.ledger_models[0]
    return "/api/v1/usage/events/?" + urlencode(params)


class ReconciliationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The ledger against each provider's own usage report, per provider, UTC day and model
    (`manage.py reconcile_usage`, daily in beat). Filters: `day`, `provider`, `status`, `model`,
    `day__gte`, `day__lte`."""

    queryset = Reconciliation.objects.all()
    serializer_class = ReconciliationSerializer
    filterset_fields = {
        "day": ["exact", "gte", "lte"],
        "provider": ["exact"],
        "status": ["exact"],
        "model": ["exact"],
    }
