"""Management API: plans, tenants and their keys."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import django_filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from metering.budgets import budget_status
from metering.pricing import usd_str
from metering.usage import tenant_usage_summary
from spendplane.filters import UtcDateTimeFilter

from . import services
from .access import access_api_key, access_tenant
from .models import (
    EVERY_SUBJECT,
    ApiKey,
    AuditEntry,
    Budget,
    CapChange,
    Credit,
    Plan,
    RateLimit,
    RevenueEntry,
    Scope,
    Tenant,
)
from .principal import Principal
from .revenue import CREATED, RevenueError, RevenueInput, revenue_entry_upsert


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
            "loop_max_repeats",
            "loop_window_seconds",
            "guard_mode",
            "guard_block_threshold",
            "guard_sanitize_threshold",
            "guard_role_thresholds",
            "guard_scan_system",
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
            "revenue_source",
            "billing_customer_id",
            "guard_mode",
            "guard_block_threshold",
            "guard_sanitize_threshold",
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


class BudgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Budget
        fields = [
            "id",
            "tenant",
            "scope",
            "subject",
            "period",
            "limit_usd",
            "hard",
            "raised_limit_usd",
            "raised_until",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs):
        scope = attrs.get("scope", getattr(self.instance, "scope", None))
        subject = attrs.get("subject", getattr(self.instance, "subject", ""))
        if scope == Scope.TENANT and subject:
            raise serializers.ValidationError({"subject": "Must be empty for a tenant budget."})
        if scope != Scope.TENANT and not subject:
            raise serializers.ValidationError({"subject": f"Required for a {scope} budget (use * for every one)."})
        if scope == Scope.KEY and subject != EVERY_SUBJECT:
            tenant = attrs.get("tenant", getattr(self.instance, "tenant", None))
            if not subject.isdigit() or not ApiKey.objects.filter(pk=int(subject), tenant=tenant).exists():
                raise serializers.ValidationError({"subject": "Must be the id of one of this tenant's keys."})
        for field in ("limit_usd", "raised_limit_usd"):
            if attrs.get(field) is not None and attrs[field] < 0:
                raise serializers.ValidationError({field: "Must not be negative."})
        return attrs


class RateLimitSerializer(serializers.ModelSerializer):
    class Meta:
        model = RateLimit
        fields = ["id", "tenant", "scope", "subject", "rpm_limit", "tpm_limit", "max_concurrency", "created_at"]


class CapChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = CapChange
        fields = ["id", "tenant", "actor_label", "what", "before", "after", "reason", "created_at"]


class ResetPeriodSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(Scope.choices, default=Scope.TENANT)
    subject = serializers.CharField(default="", allow_blank=True)
    period = serializers.ChoiceField(Budget.Period.choices, default=Budget.Period.MONTH)
    reason = serializers.CharField(default="", allow_blank=True)


class RaiseCapSerializer(serializers.Serializer):
    limit_usd = serializers.DecimalField(max_digits=18, decimal_places=9, min_value=0)
    until = serializers.DateTimeField()
    period = serializers.ChoiceField(Budget.Period.choices, default=Budget.Period.MONTH)
    reason = serializers.CharField(default="", allow_blank=True)


def _money_as_strings(value):
    if isinstance(value, Decimal):
        return usd_str(value)
    if isinstance(value, dict):
        return {k: _money_as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_money_as_strings(v) for v in value]
    return value


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

    def perform_update(self, serializer):
        serializer.instance = services.tenant_update(
            tenant=serializer.instance, actor=self.request.user, **serializer.validated_data
        )

    @extend_schema(request=None, responses={200: TenantSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        """Suspend the tenant: every key answers 403 from the next request on."""
        tenant = services.tenant_suspend(
            tenant=self.get_object(), actor=request.user, reason=request.data.get("reason", "")
        )
        return Response(TenantSerializer(tenant).data)

    @extend_schema(request=None, responses={200: TenantSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        tenant = services.tenant_resume(
            tenant=self.get_object(), actor=request.user, reason=request.data.get("reason", "")
        )
        return Response(TenantSerializer(tenant).data)

    @extend_schema(request=ResetPeriodSerializer)
    @action(detail=True, methods=["post"], url_path="reset-period")
    def reset_period(self, request, pk=None):
        """Forgive the spend so far in the current period of one budget scope."""
        tenant = self.get_object()
        serializer = ResetPeriodSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        counter = services.budget_period_reset(tenant=tenant, actor=request.user, **serializer.validated_data)
        return Response({"period_key": counter.period_key, "spent_usd": usd_str(counter.spent())})

    @extend_schema(request=RaiseCapSerializer, responses={200: BudgetSerializer})
    @action(detail=True, methods=["post"], url_path="raise-cap")
    def raise_cap(self, request, pk=None):
        """Raise the tenant's budget until a date; it falls back by itself afterwards."""
        tenant = self.get_object()
        serializer = RaiseCapSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        budget = services.budget_raise_until(tenant=tenant, actor=request.user, **serializer.validated_data)
        return Response(BudgetSerializer(budget).data)

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
        """The tenant's spend this month (UTC), and spent, reserved and remaining for each budget."""
        tenant = self.get_object()
        summary = tenant_usage_summary(tenant)
        summary["budgets"] = budget_status(Principal.for_tenant(tenant))
        return Response(_money_as_strings(summary))


class _ActorMixin:
    def _actor(self):
        return self.request.user


class BudgetViewSet(_ActorMixin, viewsets.ModelViewSet):
    """Spend caps per tenant, end user (`*`: every end user), feature or key, per day or month."""

    queryset = Budget.objects.select_related("tenant")
    serializer_class = BudgetSerializer
    filterset_fields = ["tenant", "scope", "subject", "period", "hard"]

    def perform_create(self, serializer):
        serializer.instance = services.budget_save(budget=Budget(**serializer.validated_data), actor=self._actor())

    def perform_update(self, serializer):
        budget = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(budget, name, value)
        serializer.instance = services.budget_save(budget=budget, actor=self._actor())

    def perform_destroy(self, instance):
        services.budget_delete(budget=instance, actor=self._actor())


class RateLimitViewSet(_ActorMixin, viewsets.ModelViewSet):
    """Requests/min, tokens/min and in-flight caps per key, end user or feature (`*`: every one)."""

    queryset = RateLimit.objects.select_related("tenant")
    serializer_class = RateLimitSerializer
    filterset_fields = ["tenant", "scope", "subject"]

    def perform_create(self, serializer):
        serializer.instance = services.rate_limit_save(
            limit=RateLimit(**serializer.validated_data), actor=self._actor()
        )

    def perform_update(self, serializer):
        limit = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(limit, name, value)
        serializer.instance = services.rate_limit_save(limit=limit, actor=self._actor())


class CapChangeViewSet(viewsets.ReadOnlyModelViewSet):
    """Every cap change: who, what, before, after, when."""

    queryset = CapChange.objects.all()
    serializer_class = CapChangeSerializer
    filterset_fields = ["tenant", "actor_label"]


class CreditSerializer(serializers.ModelSerializer):
    class Meta:
        model = Credit
        fields = ["id", "tenant", "amount_usd", "day", "note", "created_at"]

    def validate_amount_usd(self, value):
        if value <= 0:
            raise serializers.ValidationError("Must be positive.")
        return value


class CreditViewSet(viewsets.ModelViewSet):
    """One-off credits: they reduce the tenant's revenue on their day."""

    queryset = Credit.objects.select_related("tenant")
    serializer_class = CreditSerializer
    filterset_fields = ["tenant", "day"]


class RevenueEntrySerializer(serializers.ModelSerializer):
    period = serializers.RegexField(
        r"^\d{4}-(0[1-9]|1[0-2])$",
        write_only=True,
        required=False,
        help_text="YYYY-MM: the whole month, instead of period_start and period_end.",
    )
    period_start = serializers.DateField(required=False)
    period_end = serializers.DateField(required=False, help_text="Inclusive; default: period_start (one day).")
    result = serializers.SerializerMethodField(help_text="created, unchanged or replaced (on a write).")

    class Meta:
        model = RevenueEntry
        fields = [
            "id",
            "tenant",
            "source",
            "external_id",
            "period",
            "period_start",
            "period_end",
            "amount_usd",
            "currency",
            "description",
            "history",
            "result",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["history", "created_at", "updated_at"]
        validators = []  # (source, external_id) is an upsert key here, not a conflict

    def get_result(self, entry) -> str | None:
        return self.context.get("result")

    def validate(self, attrs):
        if attrs.get("period"):
            import calendar

            year, month = (int(part) for part in attrs.pop("period").split("-"))
            attrs["period_start"] = date(year, month, 1)
            attrs["period_end"] = date(year, month, calendar.monthrange(year, month)[1])
        elif not attrs.get("period_start"):
            raise serializers.ValidationError({"period_start": "Give period (YYYY-MM) or period_start."})
        attrs.setdefault("period_end", attrs["period_start"])
        return attrs


class RevenueEntryViewSet(
    mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """Revenue the billing system invoiced, per tenant and service period (negative: a credit note
    or refund). POST is an upsert on (source, external_id): the same entry again changes nothing
    (200, result unchanged), changed values replace it and keep the old ones in `history` (200,
    result replaced), a new one is 201. A tenant whose `revenue_source` is `invoiced` has its
    margin reckoned against these entries."""

    queryset = RevenueEntry.objects.select_related("tenant")
    serializer_class = RevenueEntrySerializer
    filterset_fields = {
        "tenant": ["exact"],
        "source": ["exact"],
        "external_id": ["exact"],
        "period_start": ["gte", "lte"],
        "period_end": ["gte", "lte"],
    }

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            entry, outcome = revenue_entry_upsert(
                RevenueInput(
                    tenant=data["tenant"],
                    source=data["source"],
                    external_id=data["external_id"],
                    period_start=data["period_start"],
                    period_end=data["period_end"],
                    amount_usd=data["amount_usd"],
                    currency=data.get("currency", "USD"),
                    description=data.get("description", ""),
                ),
                actor=getattr(request.user, "username", "") or str(request.user),
            )
        except RevenueError as error:
            raise serializers.ValidationError({"non_field_errors": [str(error)]}) from None
        body = self.get_serializer(entry, context={**self.get_serializer_context(), "result": outcome}).data
        return Response(body, status=status.HTTP_201_CREATED if outcome == CREATED else status.HTTP_200_OK)


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "actor_label",
            "remote_addr",
            "via",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "tenant_id",
            "before",
            "after",
        ]


class AuditEntryFilter(django_filters.FilterSet):
    since = UtcDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="at", lookup_expr="lt")
    tenant = django_filters.NumberFilter(field_name="tenant_id")

    class Meta:
        model = AuditEntry
        fields = ["action", "object_type", "object_id", "actor_label", "tenant", "since", "until"]


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Every create, change and delete of plans, tenants, keys, budgets, limits, credits, revenue,
    providers, routes, prices and webhooks: who (`actor_label`), from where (`remote_addr`, `via`),
    what (`object_type`, `object_id`), before and after (changed fields only; secrets masked)."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter
