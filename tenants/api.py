"""Management API: plans, tenants and their keys."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from metering.usage import tenant_usage_summary

from . import services
from .access import access_api_key, access_tenant
from .models import ApiKey, Plan, Tenant


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "id",
            "name",
            "monthly_price_usd",
            "monthly_budget_usd",
            "rpm_limit",
            "tpm_limit",
            "max_concurrency",
            "allowed_models",
            "allow_unpriced_models",
            "created_at",
            "updated_at",
        ]

    def validate_allowed_models(self, value):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise serializers.ValidationError("Must be a list of model names.")
        return value

    def validate_monthly_price_usd(self, value):
        if value < 0:
            raise serializers.ValidationError("Must not be negative.")
        return value

    def validate_monthly_budget_usd(self, value):
        if value is not None and value < 0:
            raise serializers.ValidationError("Must not be negative.")
        return value


class TenantSerializer(serializers.ModelSerializer):
    effective_caps = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "external_id",
            "plan",
            "status",
            "monthly_budget_usd",
            "rpm_limit",
            "tpm_limit",
            "max_concurrency",
            "monthly_price_override_usd",
            "timezone",
            "effective_caps",
            "created_at",
            "updated_at",
        ]

    def get_effective_caps(self, tenant: Tenant) -> dict:
        """Caps in force: the tenant's override, else the plan's. Money as a decimal string."""
        caps = {field: tenant.effective_cap(field) for field in Tenant.CAP_FIELDS}
        budget = caps["monthly_budget_usd"]
        caps["monthly_budget_usd"] = None if budget is None else str(budget)
        return caps

    def validate_monthly_budget_usd(self, value):
        if value is not None and value < 0:
            raise serializers.ValidationError("Must not be negative.")
        return value

    def validate_timezone(self, value):
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise serializers.ValidationError(f"Unknown time zone '{value}'.") from None
        return value


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "tenant", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = ["tenant", "prefix", "created_at", "revoked_at", "last_used_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The plaintext key. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class TenantFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Tenant
        fields = ["status", "plan", "external_id", "name"]


class PlanViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Plan.objects.all()
    serializer_class = PlanSerializer
    filterset_fields = ["name"]


class TenantViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Tenant.objects.select_related("plan")
    serializer_class = TenantSerializer
    filterset_class = TenantFilter

    def get_object(self):
        return access_tenant(self.request.user, self.kwargs["pk"])

    def perform_create(self, serializer):
        serializer.instance = services.tenant_create(**serializer.validated_data)

    @extend_schema(request=ApiKeySerializer, responses={200: ApiKeySerializer(many=True), 201: ApiKeyCreatedSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=ApiKeySerializer)
    def keys(self, request, pk=None):
        tenant = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(tenant.api_keys.all())
            return self.get_paginated_response(ApiKeySerializer(page, many=True).data)
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, raw = services.api_key_create(
            tenant=tenant,
            name=serializer.validated_data["name"],
            expires_at=serializer.validated_data.get("expires_at"),
        )
        data = ApiKeyCreatedSerializer(key).data
        data["key"] = raw
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiKeySerializer})
    @action(detail=True, methods=["get", "delete"], url_path=r"keys/(?P<key_id>\d+)", serializer_class=ApiKeySerializer)
    def key_detail(self, request, pk=None, key_id=None):
        """GET one key; DELETE revokes it (the row stays, so the ledger keeps its history)."""
        key = access_api_key(request.user, self.get_object(), key_id)
        if request.method == "DELETE":
            services.api_key_revoke(key=key)
        return Response(ApiKeySerializer(key).data)

    @extend_schema(
        responses=inline_serializer(
            "TenantUsage",
            {
                "tenant": serializers.IntegerField(),
                "period": serializers.CharField(),
                "requests": serializers.IntegerField(),
                "cost_usd": serializers.DecimalField(max_digits=18, decimal_places=9),
                "remaining_usd": serializers.DecimalField(max_digits=18, decimal_places=9, allow_null=True),
            },
        )
    )
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        """The tenant's spend for the current month (UTC)."""
        summary = tenant_usage_summary(self.get_object())
        for field in ("cost_usd", "monthly_budget_usd", "remaining_usd"):
            if summary[field] is not None:
                summary[field] = str(summary[field])
        for row in summary["by_model"]:
            row["cost_usd"] = str(row["cost_usd"])
        return Response(summary)
