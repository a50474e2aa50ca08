"""Revenue, AI cost and margin per tenant: cost live to the last ledger row (the day rollups, UTC
days, plus the ledger after their watermark; `live_usage`).

Revenue of a range, for a tenant on invoiced revenue: its `RevenueEntry` amounts, each spread
evenly over its service period (`tenants.revenue`; credit notes are negative entries). Otherwise
the plan's: for each month the range touches, the tenant's monthly price (its override, else the
plan's) × the days of the range in that month ÷ the days of that month (so a whole month is
exactly its price), rounded once per month; less the credits given in the range.
Margin = revenue − AI cost; margin % = margin ÷ revenue × 100 (None when there is no revenue).
All `Decimal`, USD, 9 places.
"""

from __future__ import annotations

import calendar
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce

from tenants.models import Credit, Tenant
from tenants.revenue import invoiced_revenue

from .live_usage import Window, active_end_users, live_sums
from .models import MarginReport, UsageRollup

ZERO = Decimal("0")
Q9 = Decimal("0.000000001")
Q2 = Decimal("0.01")


@dataclass
class Margin:
    tenant_id: int
    tenant_name: str
    start: date
    end: date  # inclusive
    revenue_usd: Decimal = ZERO
    revenue_source: str = "plan"  # "plan": the list price prorated by day; "invoiced": RevenueEntry rows
    cost_usd: Decimal = ZERO
    requests: int = 0
    tokens: int = 0
    active_users: int = 0  # distinct named end users with a request in the range
    by_model: list[dict] = field(default_factory=list)
    by_feature: list[dict] = field(default_factory=list)
    # A period still in progress, at the current burn: cost scaled to the whole period, revenue of it.
    projected_cost_usd: Decimal | None = None
    projected_revenue_usd: Decimal | None = None

    @property
    def margin_usd(self) -> Decimal:
        return self.revenue_usd - self.cost_usd

    @property
    def cost_per_request(self) -> Decimal | None:
        return per(self.cost_usd, self.requests)

    @property
    def cost_per_active_user(self) -> Decimal | None:
        return per(self.cost_usd, self.active_users)

    @property
    def cost_share_pct(self) -> Decimal | None:
        """AI cost as a share of revenue, in percent."""
        if not self.revenue_usd:
            return None
        return (self.cost_usd / self.revenue_usd * 100).quantize(Q2, rounding=ROUND_HALF_UP)

    @property
    def projected_margin_usd(self) -> Decimal | None:
        if self.projected_cost_usd is None or self.projected_revenue_usd is None:
            return None
        return self.projected_revenue_usd - self.projected_cost_usd

    @property
    def margin_pct(self) -> Decimal | None:
        if not self.revenue_usd:
            return None
        return (self.margin_usd / self.revenue_usd * 100).quantize(Q2, rounding=ROUND_HALF_UP)


def per(amount: Decimal, count: int) -> Decimal | None:
    return (amount / count).quantize(Q9, rounding=ROUND_HALF_UP) if count else None


def month_range(period: str) -> tuple[date, date]:
    """'2026-11' → (2026-11-01, 2026-11-30)."""
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _monthly_price(tenant: Tenant) -> Decimal:
    monthly = tenant.monthly_price_override_usd
    return Decimal(tenant.plan.monthly_price_usd if monthly is None else monthly)


def to_date(start: date, end: date, today: date | None = None) -> tuple[date, date]:
    """A period cut at today: revenue is earned day by day, and days to come have no cost yet."""
    today = today or date.today()
    return start, max(start, min(end, today))


def daily_revenue(tenant: Tenant, day: date) -> Decimal:
    days = calendar.monthrange(day.year, day.month)[1]
    return (_monthly_price(tenant) / days).quantize(Q9, rounding=ROUND_HALF_UP)


def revenue(tenant: Tenant, start: date, end: date, credits: dict | None = None) -> Decimal:
    """Plan revenue of [start, end] (inclusive, from the tenant's creation day) less credits."""
    total = ZERO
    day = max(start, tenant.created_at.date())
    monthly = _monthly_price(tenant)
    while day <= end:
        month_days = calendar.monthrange(day.year, day.month)[1]
        month_end = day.replace(day=month_days)
        last = min(end, month_end)
        covered = (last - day).days + 1
        total += (monthly * covered / month_days).quantize(Q9, rounding=ROUND_HALF_UP)
        day = last + timedelta(days=1)
    if credits is None:
        credits = _credits(start, end)
    return total - credits.get(tenant.pk, ZERO)


def _credits(start: date, end: date) -> dict[int, Decimal]:
    return dict(
        Credit.objects.filter(day__gte=start, day__lte=end)
        .values("tenant_id")
        .annotate(total=Coalesce(Sum("amount_usd"), ZERO))
        .values_list("tenant_id", "total")
    )


def _breakdown(rows: list[dict], field_name: str) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["tenant_id"], -r["cost_usd"], r[field_name])):
        out.setdefault(row["tenant_id"], []).append(
            {
                field_name: row[field_name],
                "requests": row["requests"],
                "tokens": row["prompt_tokens"] + row["completion_tokens"],
                "cost_usd": row["cost_usd"],
            }
        )
    return out


def day_bounds(start: date, end: date, tz_name: str = "UTC") -> tuple[datetime, datetime]:
    """[start, end] as whole days in a time zone, given as a half-open UTC interval."""
    tz = zoneinfo.ZoneInfo(tz_name or "UTC")
    return (
        datetime.combine(start, time.min, tzinfo=tz).astimezone(UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC),
    )


def margins_between(
    start: date,
    end: date,
    *,
    tenant_ids=None,
    breakdown: bool = False,
    local_time: bool = False,
    period_end: date | None = None,
    now: datetime | None = None,
    users: bool = False,
) -> list[Margin]:
    """One Margin per tenant for the days [start, end], highest cost first. Days are UTC days
    (day rollups), or with local_time=True each tenant's own days in its time zone (hour rollups;
    exact for whole-hour offsets, a zone like UTC+5:30 is read to the hour). With `period_end`
    (the whole period's last day, `end` being cut at today), a period still in progress at `now`
    is also projected to its end at the burn so far. `users` counts active end users (per feature
    too, with `breakdown`): the one figure here that rollup sums cannot give, so it costs a
    distinct count; off by default."""
    low, high = day_bounds(start, end)
    tenants = Tenant.objects.select_related("plan").filter(created_at__lt=high)
    if tenant_ids is not None:
        tenants = tenants.filter(pk__in=tenant_ids)
    if local_time:
        by_zone: dict[str, list[int]] = {}
        for tenant_id, tz_name in tenants.values_list("pk", "timezone"):
            by_zone.setdefault(tz_name, []).append(tenant_id)
        windows = [Window(*day_bounds(start, end, tz_name), ids) for tz_name, ids in by_zone.items()]
        totals_from = detail_from = UsageRollup.Granularity.HOUR
    else:
        windows = [Window(low, high, tenant_ids)]
        # Totals from the one-row-per-tenant-day rollups; the breakdowns need the detailed ones.
        totals_from, detail_from = UsageRollup.Granularity.TENANT_DAY, UsageRollup.Granularity.DAY
    totals = {row["tenant_id"]: row for row in live_sums(windows, granularity=totals_from)}
    by_model = by_feature = {}
    if breakdown:
        by_model = _breakdown(live_sums(windows, granularity=detail_from, group_by=("model",)), "model")
        by_feature = _breakdown(live_sums(windows, granularity=detail_from, group_by=("feature",)), "feature")
        feature_users = active_end_users(windows, granularity=detail_from, per_feature=True) if users else {}
        for tenant_id, rows in by_feature.items():
            for row in rows:
                row["active_users"] = feature_users.get((tenant_id, row["feature"]), 0)
                row["cost_per_request"] = per(row["cost_usd"], row["requests"])
                row["cost_per_active_user"] = per(row["cost_usd"], row["active_users"])
    active = active_end_users(windows, granularity=detail_from) if users else {}
    burn = _elapsed_share(start, period_end, now)
    if burn is not None:
        projected_invoiced = invoiced_revenue(start, period_end, tenant_ids)
        projected_credits = _credits(start, period_end)
    credits = _credits(start, end)
    invoiced = invoiced_revenue(start, end, tenant_ids)
    margins = []
    for tenant in tenants:
        row = totals.get(tenant.pk, {})
        on_invoices = tenant.revenue_source == "invoiced"
        margins.append(
            Margin(
                tenant_id=tenant.pk,
                tenant_name=tenant.name,
                start=start,
                end=end,
                revenue_usd=invoiced.get(tenant.pk, ZERO) if on_invoices else revenue(tenant, start, end, credits),
                revenue_source=tenant.revenue_source,
                active_users=active.get(tenant.pk, 0),
                cost_usd=row.get("cost_usd", ZERO),
                requests=row.get("requests", 0),
                tokens=row.get("prompt_tokens", 0) + row.get("completion_tokens", 0),
                by_model=by_model.get(tenant.pk, []),
                by_feature=by_feature.get(tenant.pk, []),
            )
        )
        if burn is not None:
            margin = margins[-1]
            margin.projected_cost_usd = (margin.cost_usd / burn).quantize(Q9, rounding=ROUND_HALF_UP)
            margin.projected_revenue_usd = (
                projected_invoiced.get(tenant.pk, ZERO)
                if on_invoices
                else revenue(tenant, start, period_end, projected_credits)
            )
    margins.sort(key=lambda m: (-m.cost_usd, m.tenant_name))
    return margins


def _elapsed_share(start: date, period_end: date | None, now: datetime | None) -> Decimal | None:
    """The share of [start, period_end] gone by now, when the period is in progress; else None."""
    if period_end is None:
        return None
    now = now or datetime.now(UTC)
    low, high = day_bounds(start, period_end)
    if not low < now < high:
        return None
    return Decimal((now - low).total_seconds()) / Decimal((high - low).total_seconds())


def _jsonable(rows: list[dict]) -> list[dict]:
    return [{k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in row.items()} for row in rows]


def margin_report_compute(*, period: str, start: date) -> int:
    """(Re)compute the stored MarginReport of every tenant for one UTC day or month; idempotent."""
    end = start if period == MarginReport.Period.DAY else to_date(*month_range(start.strftime("%Y-%m")))[1]
    margins = margins_between(start, end, breakdown=True)
    with transaction.atomic():
        for m in margins:
            MarginReport.objects.update_or_create(
                tenant_id=m.tenant_id,
                period=period,
                period_start=start,
                defaults={
                    "revenue_usd": m.revenue_usd,
                    "cost_usd": m.cost_usd,
                    "margin_usd": m.margin_usd,
                    "margin_pct": m.margin_pct,
                    "requests": m.requests,
                    "tokens": m.tokens,
                    "by_model": _jsonable(m.by_model),
                    "by_feature": _jsonable(m.by_feature),
                },
            )
    return len(margins)
