"""Usage totals that are live to the last ledger row: the rollups up to their watermark plus the
ledger rows recorded after it, summed by the database in one statement.

One statement reads one snapshot, so a rollup run committing meanwhile (its new hour rows and
its new watermark together) is either wholly seen or wholly not: a row is counted once, in its
rollup or in the tail after the watermark, never in both and never in neither. The tail is
small (the rows since the last run, a minute's worth with the beat schedule) and is read through
the ledger's `recorded_at` index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import F, IntegerField, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncDay

from .analytics import AnalyticsUnavailable, analytics_live_sums, analytics_reads
from .models import RollupState, UsageEvent, UsageRollup

logger = logging.getLogger("spendplane.analytics")

ZERO = Decimal("0")
Q9 = Decimal("0.000000001")
GROUPABLE = ("model", "feature", "end_user")
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """[low, high) in UTC, for some tenants (None: all)."""

    low: datetime
    high: datetime
    tenant_ids: Sequence[int] | None = None

    def q(self, field: str) -> Q:
        q = Q(**{f"{field}__gte": self.low, f"{field}__lt": self.high})
        if self.tenant_ids is not None:
            q &= Q(tenant_id__in=list(self.tenant_ids))
        return q


def _any(windows: Iterable[Window], field: str) -> Q:
    q = Q(pk__in=[])
    for window in windows:
        q |= window.q(field)
    return q


def _watermark():
    """The rollup watermark, as a subquery of the same statement (the epoch before any run)."""
    state = RollupState.objects.filter(name="usage").values("recorded_through")[:1]
    return Coalesce(Subquery(state), Value(_BEGINNING))


def live_sums(
    windows: Sequence[Window],
    *,
    granularity: str = UsageRollup.Granularity.TENANT_DAY,
    group_by: Sequence[str] = (),
    by_day: bool = False,
) -> list[dict]:
    """Per tenant (and per `group_by` column, and per UTC day with `by_day`): requests, prompt,
    completion and cost, from `granularity` rollups inside the windows plus the ledger rows after
    the watermark created inside them. Tenant-day rollups carry no model, feature or end user: a
    breakdown reads day (or hour) rollups."""
    if group_by and granularity == UsageRollup.Granularity.TENANT_DAY:
        raise ValueError("tenant-day rollups cannot be broken down; use day or hour rollups")
    unknown = set(group_by) - set(GROUPABLE)
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)}")
    if not windows:
        return []
    if analytics_reads():
        try:
            return analytics_live_sums(windows, group_by=group_by, by_day=by_day)
        except AnalyticsUnavailable as exc:
            logger.warning("usage sums read from PostgreSQL: %s", exc)
    # The same annotations in the same order on both sides, so UNION ALL lines columns up.
    rolled = UsageRollup.objects.filter(_any(windows, "bucket_start"), granularity=granularity).annotate(
        g_tenant=F("tenant_id"),
        **{f"g_{name}": F(name) for name in group_by},
        **({"g_day": TruncDay("bucket_start")} if by_day else {}),
        s_requests=F("requests"),
        s_prompt=F("prompt_tokens"),
        s_completion=F("completion_tokens"),
        s_cost=F("cost_usd"),
    )
    tail = _tail(windows).annotate(
        g_tenant=F("tenant_id"),
        **{f"g_{name}": F(name) for name in group_by},
        **({"g_day": TruncDay("created_at")} if by_day else {}),
        s_requests=Value(1, output_field=IntegerField()),
        s_prompt=F("prompt_tokens"),
        s_completion=F("completion_tokens"),
        s_cost=F("cost_usd"),
    )
    keys = ["g_tenant", *(f"g_{name}" for name in group_by), *(["g_day"] if by_day else [])]
    sums = ["s_requests", "s_prompt", "s_completion", "s_cost"]
    rolled_sql, rolled_params = rolled.values(*keys, *sums).order_by().query.sql_with_params()
    tail_sql, tail_params = tail.values(*keys, *sums).order_by().query.sql_with_params()
    names = ", ".join(keys)
    sql = (
        f"SELECT {names}, SUM(s_requests), SUM(s_prompt), SUM(s_completion), SUM(s_cost) "  # noqa: S608 - names are ours
        f"FROM ({rolled_sql} UNION ALL {tail_sql}) live GROUP BY {names}"
    )
    out = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [*rolled_params, *tail_params])
        for row in cursor.fetchall():
            key_values, (requests, prompt, completion, cost) = row[: len(keys)], row[len(keys) :]
            item = {"tenant_id": key_values[0]}
            for index, name in enumerate(group_by, 1):
                item[name] = key_values[index]
            if by_day:
                item["day"] = _as_date(key_values[-1])
            item["requests"] = int(requests or 0)
            item["prompt_tokens"] = int(prompt or 0)
            item["completion_tokens"] = int(completion or 0)
            item["cost_usd"] = _as_decimal(cost)
            out.append(item)
    return out


def _as_decimal(value) -> Decimal:
    """PostgreSQL sums numerics exactly; SQLite returns a number, read back as Django reads its
    own aggregates of decimal columns."""
    if value is None:
        return ZERO
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(Q9)


def _as_date(value):
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return datetime.fromisoformat(value).date()
    return value


def _tail(windows: Sequence[Window]):
    """Ledger rows in the windows recorded after the watermark the statement itself reads. The
    watermark read just before is a floor for it (it only moves forward): as a literal it lets the
    planner see how few rows the tail holds and read them through the `recorded_at` index."""
    tail = UsageEvent.objects.filter(_any(windows, "created_at"), tenant__isnull=False, recorded_at__gt=_watermark())
    floor = tail_watermark()
    return tail.filter(recorded_at__gt=floor) if floor is not None else tail


def tail_watermark() -> datetime | None:
    """Up to when rollups hold the ledger (None: never rolled up)."""
    state = RollupState.objects.filter(name="usage").only("recorded_through").first()
    return state.recorded_through if state else None


def tail_rows(window: Window) -> int:
    """Ledger rows in the window not yet in a rollup (how much of a figure is read live)."""
    return _tail([window]).count()


def active_end_users(
    windows: Sequence[Window], *, granularity: str = UsageRollup.Granularity.DAY, per_feature: bool = False
) -> dict:
    """Distinct named end users per tenant (or per (tenant, feature)) with a request in the
    windows, live like `live_sums`: from `granularity` rollups plus the ledger tail, in one
    statement. The pairs are made distinct first (a hash of a few thousand), then counted."""
    if not windows:
        return {}
    keys = ["g_tenant", "g_feature", "g_end_user"] if per_feature else ["g_tenant", "g_end_user"]
    rolled = (
        UsageRollup.objects.filter(_any(windows, "bucket_start"), granularity=granularity)
        .exclude(end_user="")
        .annotate(g_tenant=F("tenant_id"), g_feature=F("feature"), g_end_user=F("end_user"))
    )
    tail = (
        _tail(windows)
        .exclude(end_user="")
        .annotate(g_tenant=F("tenant_id"), g_feature=F("feature"), g_end_user=F("end_user"))
    )
    rolled_sql, rolled_params = rolled.values(*keys).order_by().query.sql_with_params()
    tail_sql, tail_params = tail.values(*keys).order_by().query.sql_with_params()
    groups = ", ".join(keys[:-1])
    sql = (
        f"SELECT {groups}, COUNT(*) FROM (SELECT DISTINCT {', '.join(keys)} "  # noqa: S608 - names are ours
        f"FROM ({rolled_sql} UNION ALL {tail_sql}) live) pairs GROUP BY {groups}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*rolled_params, *tail_params])
        if per_feature:
            return {(tenant, feature): count for tenant, feature, count in cursor.fetchall()}
        return dict(cursor.fetchall())
