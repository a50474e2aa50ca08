"""Reads over the ledger: per-tenant spend for a period."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import Tenant

from .budgets import period_bounds
from .models import UsageEvent

ZERO = Decimal("0")


def _totals(events) -> dict:
    return events.aggregate(
        requests=Count("id"),
        prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
        cached_tokens=Coalesce(Sum("cached_tokens"), 0),
        completion_tokens=Coalesce(Sum("completion_tokens"), 0),
        reasoning_tokens=Coalesce(Sum("reasoning_tokens"), 0),
        cost_usd=Coalesce(Sum("cost_usd"), ZERO),
        unpriced_requests=Count("id", filter=Q(priced=False, status_code__lt=400)),
        errors=Count("id", filter=Q(status_code__gte=400)),
    )


def tenant_usage_summary(tenant: Tenant, at: datetime | None = None) -> dict:
    """Spend of `tenant` in the month containing `at` (now by default), in total and by model."""
    _, start, end = period_bounds("month", at or timezone.now(), "UTC")
    events = UsageEvent.objects.filter(tenant=tenant, created_at__gte=start, created_at__lt=end)
    totals = _totals(events)
    budget = tenant.effective_cap("monthly_budget_usd")
    by_model = [
        {
            "model": row["model"],
            "requests": row["requests"],
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "cost_usd": row["cost_usd"],
        }
        for row in events.values("model")
        .annotate(
            requests=Count("id"),
            prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
            completion_tokens=Coalesce(Sum("completion_tokens"), 0),
            cost_usd=Coalesce(Sum("cost_usd"), ZERO),
        )
        .order_by("-cost_usd", "model")
    ]
    return {
        "tenant": tenant.pk,
        "period": start.strftime("%Y-%m"),
        "period_start": start,
        "period_end": end,
        **totals,
        "monthly_budget_usd": budget,
        "remaining_usd": None if budget is None else budget - totals["cost_usd"],
        "by_model": by_model,
    }
