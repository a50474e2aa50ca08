"""What the finance and support dashboards read: margins and usage live to the last ledger row
(`live_usage`), each figure cached a few seconds and shown with the moment it was computed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from guard.models import GuardEvent
from tenants.models import Tenant
from tenants.principal import Principal

from .budgets import budget_status
from .live_usage import Window, live_sums
from .margins import day_bounds, margins_between, month_range, to_date
from .models import AlertEvent, UsageEvent, UsageRollup

ZERO = Decimal("0")
BLANK = Decimal("-1e18")
SORTS = {
    "name": lambda r: r.name.lower(),
    "revenue": lambda r: r.revenue,
    "cost": lambda r: r.cost,
    "margin": lambda r: r.margin,
    "margin_pct": lambda r: r.margin_pct if r.margin_pct is not None else Decimal("-1e9"),
    "change": lambda r: r.change_pct if r.change_pct is not None else Decimal("-1e9"),
    "budget": lambda r: r.budget_used_pct if r.budget_used_pct is not None else Decimal("-1"),
    # a blank (nothing to divide by, a closed period) sorts below every figure
    "cost_share": lambda r: r.cost_share_pct if r.cost_share_pct is not None else BLANK,
    "cost_per_user": lambda r: r.cost_per_active_user if r.cost_per_active_user is not None else BLANK,
    "projected_margin": lambda r: r.projected_margin if r.projected_margin is not None else BLANK,
}


def cached(kind: str, *parts, compute) -> tuple:
    """`compute()` and when it ran, cached for SPENDPLANE_DASHBOARD_CACHE_SECONDS (seconds)."""
    key = ":".join(["dash", kind, *map(str, parts)])
    hit = cache.get(key)
    if hit is None:
        hit = (compute(), timezone.now())
        cache.set(key, hit, settings.SPENDPLANE_DASHBOARD_CACHE_SECONDS)
    return hit


def previous_period(period: str) -> str:
    start, _ = month_range(period)
    return (start - timedelta(days=1)).strftime("%Y-%m")


@dataclass
class MarginRow:
    tenant_id: int
    name: str
    plan: str
    revenue: Decimal
    cost: Decimal
    margin: Decimal
    margin_pct: Decimal | None
    previous_cost: Decimal
    change_pct: Decimal | None
    budget: Decimal | None
    budget_used_pct: Decimal | None
    requests: int
    revenue_source: str = "plan"
    active_users: int = 0
    cost_per_active_user: Decimal | None = None
    cost_share_pct: Decimal | None = None
    projected_margin: Decimal | None = None

    @property
    def loss_making(self) -> bool:
        return self.margin < 0


def _percent(part: Decimal, whole: Decimal | None) -> Decimal | None:
    if not whole:
        return None
    return (part / whole * 100).quantize(Decimal("0.1"))


def margin_rows(period: str) -> list[MarginRow]:
    return margin_table(period)[0]


def margin_table(period: str) -> tuple[list[MarginRow], datetime]:
    """Every tenant's margin for a month, with the change in AI cost against the month before, and
    the moment it was computed."""

    def compute():
        start, period_end = month_range(period)
        end = to_date(start, period_end, timezone.now().date())[1]
        previous = {m.tenant_id: m.cost_usd for m in margins_between(*month_range(previous_period(period)))}
        tenants = {t.pk: t for t in Tenant.objects.select_related("plan")}
        rows = []
        for m in margins_between(start, end, period_end=period_end, users=True):
            tenant = tenants[m.tenant_id]
            budget = tenant.effective_cap("monthly_budget_usd")
            before = previous.get(m.tenant_id, ZERO)
            rows.append(
                MarginRow(
                    tenant_id=m.tenant_id,
                    name=m.tenant_name,
                    plan=tenant.plan.name,
                    revenue=m.revenue_usd,
                    cost=m.cost_usd,
                    margin=m.margin_usd,
                    margin_pct=m.margin_pct,
                    previous_cost=before,
                    change_pct=_percent(m.cost_usd - before, before),
                    budget=budget,
                    budget_used_pct=_percent(m.cost_usd, budget),
                    requests=m.requests,
                    revenue_source=m.revenue_source,
                    active_users=m.active_users,
                    cost_per_active_user=m.cost_per_active_user,
                    cost_share_pct=m.cost_share_pct,
                    projected_margin=m.projected_margin_usd,
                )
            )
        return rows

    return cached("margins", period, compute=compute)


def filter_and_sort(rows: list[MarginRow], *, q: str = "", loss_only: bool = False, sort: str = "-cost"):
    if q:
        needle = q.lower()
        rows = [r for r in rows if needle in r.name.lower() or needle in r.plan.lower()]
    if loss_only:
        rows = [r for r in rows if r.loss_making]
    key = sort.lstrip("-")
    if key not in SORTS:
        key, sort = "cost", "-cost"
    return sorted(rows, key=SORTS[key], reverse=sort.startswith("-"))


def tenant_detail(tenant: Tenant, period: str) -> dict:
    def compute():
        start, end = month_range(period)
        window = [Window(*day_bounds(start, end), [tenant.pk])]

        def top(field: str, limit: int = 10):
            rows = live_sums(window, granularity=UsageRollup.Granularity.DAY, group_by=(field,))
            rows.sort(key=lambda r: (-r["cost_usd"], r[field]))
            return [
                {
                    field: r[field],
                    "requests": r["requests"],
                    "tokens": r["prompt_tokens"] + r["completion_tokens"],
                    "cost": r["cost_usd"],
                }
                for r in rows[:limit]
            ]

        by_day = {row["day"]: row["cost_usd"] for row in live_sums(window, by_day=True)}
        series = []
        day = start
        while day <= end:
            series.append({"day": day, "cost": by_day.get(day, ZERO)})
            day += timedelta(days=1)
        margin = margins_between(
            *to_date(start, end, timezone.now().date()),
            tenant_ids=[tenant.pk],
            breakdown=True,
            period_end=end,
            users=True,
        )[0]
        return {
            "series": series,
            "by_model": top("model"),
            "top_users": top("end_user"),
            "margin": margin,
        }

    detail, as_of = cached("tenant", tenant.pk, period, compute=compute)
    now = timezone.now()
    budgets = []
    for row in budget_status(Principal.for_tenant(tenant), at=now):
        elapsed = (now - row["period_start"]) / (row["period_end"] - row["period_start"])
        row["projected_usd"] = (row["spent_usd"] / Decimal(str(elapsed))) if elapsed > 0.02 else None
        row["used_pct"] = _percent(row["spent_usd"], row["limit_usd"])
        budgets.append(row)
    return {
        **detail,
        "as_of": as_of,
        "budgets": budgets,
        "guard_events": list(GuardEvent.objects.filter(tenant=tenant)[:10]),
        "alerts": list(AlertEvent.objects.filter(tenant=tenant)[:10]),
    }


def recent_requests(tenant: Tenant, limit: int = 20) -> list[UsageEvent]:
    return list(UsageEvent.objects.filter(tenant=tenant).order_by("-created_at", "-id")[:limit])


def chart_bars(series: list[dict], *, width: int = 720, height: int = 160) -> list[dict]:
    """SVG bar geometry for a cost-by-day series (drawn by the template, no chart library)."""
    top = max((point["cost"] for point in series), default=ZERO) or Decimal("1")
    step = width / max(len(series), 1)
    bars = []
    for index, point in enumerate(series):
        bar_height = float(point["cost"] / top) * (height - 20)
        bars.append(
            {
                "x": round(index * step + 1, 1),
                "y": round(height - bar_height, 1),
                "width": round(max(step - 2, 1), 1),
                "height": round(bar_height, 1),
                "label": f"{point['day']:%d %b}: ${point['cost']:.4f}",
            }
        )
    return bars


def burn_chart(series: list[dict], margin, *, width: int = 720, height: int = 180) -> dict:
    """SVG geometry of the period's burn: cumulative AI cost by day to date, its projection to the
    period's end (dashed), and revenue accrued evenly to its projected (or actual) total."""
    days = len(series)
    if not days:
        return {}
    cumulative, total = [], ZERO
    for point in series[: max(1, (margin.end - margin.start).days + 1)]:
        total += point["cost"]
        cumulative.append(total)
    final_cost = margin.projected_cost_usd if margin.projected_cost_usd is not None else total
    final_revenue = margin.projected_revenue_usd if margin.projected_revenue_usd is not None else margin.revenue_usd
    top = max(final_cost, final_revenue, total, ZERO) or Decimal("1")
    step = width / days

    def point(index: int, value: Decimal) -> str:
        x = round((index + 1) * step, 1)
        y = round(height - 10 - float(value / top) * (height - 20), 1)
        return f"{x},{y}"

    today = len(cumulative) - 1
    return {
        "cost_line": " ".join(point(i, v) for i, v in enumerate(cumulative)),
        "projection_line": f"{point(today, total)} {point(days - 1, final_cost)}",
        "revenue_line": f"{point(-1, ZERO)} {point(days - 1, max(final_revenue, ZERO))}",
        "cost_to_date": total,
        "projected_cost": final_cost,
        "revenue": final_revenue,
        "loss": final_cost > final_revenue,
    }


def overview(now: datetime | None = None) -> dict:
    """Platform totals for today and this month, and the tenants whose spend moved most."""
    now = now or timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def compute():
        events = UsageEvent.objects.filter(created_at__gte=today, tenant__isnull=False)
        totals = events.aggregate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status_code__gte=500)),
            cost=Coalesce(Sum("cost_usd"), ZERO),
        )
        latencies = sorted(
            float(v) for v in events.filter(status_code=200).values_list("latency_ms", flat=True)[:50_000]
        )
        month_start = today.replace(day=1)
        month_cost = sum((r["cost_usd"] for r in live_sums([Window(month_start, now + timedelta(days=1))])), ZERO)
        period = now.strftime("%Y-%m")
        rows = margin_rows(period)
        movers = sorted(rows, key=lambda r: abs(r.cost - r.previous_cost), reverse=True)[:5]
        return {
            "spend_today": totals["cost"],
            "spend_month": month_cost,
            "requests_today": totals["requests"],
            "error_rate": (totals["errors"] / totals["requests"] * 100) if totals["requests"] else 0.0,
            "p50_ms": statistics.median(latencies) if latencies else None,
            "p95_ms": latencies[int(len(latencies) * 0.95) - 1] if len(latencies) >= 20 else None,
            "blocked_today": GuardEvent.objects.filter(created_at__gte=today, action="blocked").count(),
            "loss_making": sum(1 for r in rows if r.loss_making),
            "movers": movers,
            "period": period,
        }

    figures, as_of = cached("overview", today.date(), compute=compute)
    return {**figures, "as_of": as_of}


def this_month() -> str:
    return timezone.now().strftime("%Y-%m")


def valid_period(value: str | None) -> str:
    try:
        start, _ = month_range(value or "")
        if date(2000, 1, 1) <= start <= date(2100, 1, 1):
            return start.strftime("%Y-%m")
    except (ValueError, TypeError):
        pass
    return this_month()
