"""Usage rollups: the ledger re-aggregated per hour and per day for the windows that changed.

A watermark (`RollupState.recorded_through`) says up to when ledger rows have been rolled up.
Each run finds the hours touched by rows recorded since, and recomputes each of those hours
whole (delete, then insert the aggregate, in one transaction), then the days that contain them.
A rerun recomputes the same numbers; a crash half-way leaves the watermark where it was, so the
next run redoes the work; a late row (a long stream) marks its own hour dirty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from .models import RollupState, UsageEvent, UsageRollup
from .partitions import ledger_retained_from

ZERO = Decimal("0")
# Rows are written when a request ends; one may commit a little after its recorded_at.
SETTLE_LAG = timedelta(seconds=30)
# A row that commits later still than SETTLE_LAG lands below the watermark, where no live read
# counts it. Each run therefore re-rolls the hours of rows recorded this far below the watermark,
# so such a row is in the rollups by the next run instead of missing for good.
LATE_COMMIT_LOOKBACK = timedelta(minutes=5)
HOURS_PER_BATCH = 24
GROUPING = ("tenant_id", "model", "feature", "end_user")


@dataclass
class RollupResult:
    hours: int
    days: int
    hour_rows: int
    recorded_through: datetime


def _sums(prefix: str = "") -> dict:
    """Aggregates over ledger rows (prefix "") or over hour rollups (which already hold sums)."""
    if prefix:
        return {
            "requests_": Coalesce(Sum("requests"), 0),
            "errors_": Coalesce(Sum("errors"), 0),
            "unpriced_": Coalesce(Sum("unpriced_requests"), 0),
            "prompt_": Coalesce(Sum("prompt_tokens"), 0),
            "cached_": Coalesce(Sum("cached_tokens"), 0),
            "completion_": Coalesce(Sum("completion_tokens"), 0),
            "reasoning_": Coalesce(Sum("reasoning_tokens"), 0),
            "cost_": Coalesce(Sum("cost_usd"), ZERO),
            "latency_": Coalesce(Sum("latency_ms_sum"), ZERO),
        }
    return {
        "requests_": Count("id"),
        "errors_": Count("id", filter=Q(status_code__gte=400)),
        "unpriced_": Count("id", filter=Q(priced=False, status_code__lt=400)),
        "prompt_": Coalesce(Sum("prompt_tokens"), 0),
        "cached_": Coalesce(Sum("cached_tokens"), 0),
        "completion_": Coalesce(Sum("completion_tokens"), 0),
        "reasoning_": Coalesce(Sum("reasoning_tokens"), 0),
        "cost_": Coalesce(Sum("cost_usd"), ZERO),
        "latency_": Coalesce(Sum("latency_ms"), ZERO),
    }


_SUM_COLUMNS = (
    "requests",
    "errors",
    "unpriced_requests",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms_sum",
)


def _insert_aggregate(granularity: str, aggregate, bucket: datetime | None = None) -> int:
    """INSERT INTO rollups SELECT <aggregate>: the database sums and writes, no row crosses into
    Python. `aggregate` selects (bucket,) tenant_id, model, feature, end_user, then the sums."""
    sql, params = aggregate.query.sql_with_params()
    columns = ["granularity", "bucket_start", *GROUPING, *_SUM_COLUMNS]
    leading = ["%s"] if bucket is None else ["%s", "%s"]
    values = [granularity] if bucket is None else [granularity, connection.ops.adapt_datetimefield_value(bucket)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {UsageRollup._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - names are ours
            f"SELECT {', '.join(leading)}, agg.* FROM ({sql}) agg",
            [*values, *params],
        )
        return cursor.rowcount


def _contiguous(hours: list[datetime]) -> Iterable[tuple[datetime, datetime]]:
    """[start, end) ranges covering sorted hours, at most HOURS_PER_BATCH long."""
    start = previous = None
    for hour in hours:
        if start is None:
            start = previous = hour
            continue
        if hour - previous == timedelta(hours=1) and hour - start < timedelta(hours=HOURS_PER_BATCH):
            previous = hour
            continue
        yield start, previous + timedelta(hours=1)
        start = previous = hour
    if start is not None:
        yield start, previous + timedelta(hours=1)


def recompute_hours(start: datetime, end: datetime, recorded_through: datetime) -> int:
    """Replace the hour rollups of [start, end) with the aggregate of the ledger rows recorded by
    `recorded_through`; returns rows written. Rows recorded later dirty their hour for the next run."""
    with transaction.atomic():
        UsageRollup.objects.filter(
            granularity=UsageRollup.Granularity.HOUR, bucket_start__gte=start, bucket_start__lt=end
        ).delete()
        aggregate = (
            UsageEvent.objects.filter(
                created_at__gte=start, created_at__lt=end, recorded_at__lte=recorded_through, tenant__isnull=False
            )
            .annotate(bucket=TruncHour("created_at"))
            .values("bucket", *GROUPING)
            .annotate(**_sums())
            .order_by()
        )
        return _insert_aggregate(UsageRollup.Granularity.HOUR, aggregate)


def recompute_days(days: list[datetime]) -> None:
    """Replace the day rollups of the given UTC days with the sum of their hour rollups, and the
    tenant-day totals with the sum of those."""
    for day in days:
        end = day + timedelta(days=1)
        with transaction.atomic():
            UsageRollup.objects.filter(
                granularity__in=[UsageRollup.Granularity.DAY, UsageRollup.Granularity.TENANT_DAY], bucket_start=day
            ).delete()
            aggregate = (
                UsageRollup.objects.filter(
                    granularity=UsageRollup.Granularity.HOUR, bucket_start__gte=day, bucket_start__lt=end
                )
                .values(*GROUPING)
                .annotate(**_sums("hour"))
                .order_by()
            )
            _insert_aggregate(UsageRollup.Granularity.DAY, aggregate, bucket=day)
            totals = (
                UsageRollup.objects.filter(granularity=UsageRollup.Granularity.DAY, bucket_start=day)
                .values("tenant_id")
                .annotate(model=Value(""), feature=Value(""), end_user=Value(""), **_sums("day"))
                .order_by()
            )
            _insert_aggregate(UsageRollup.Granularity.TENANT_DAY, totals, bucket=day)


def rollup_usage(
    *, now: datetime | None = None, full: bool = False, progress: Callable[[str], None] | None = None
) -> RollupResult:
    """Roll up every hour touched since the watermark (or the whole ledger with full=True).
    Safe to run twice at once: runs are serialised on the watermark row."""
    now = now or timezone.now()
    horizon = now - SETTLE_LAG
    with transaction.atomic():
        RollupState.objects.get_or_create(name="usage")
    with transaction.atomic():
        state = RollupState.objects.select_for_update().get(name="usage")
        since = None if full else state.recorded_through
        if since is not None and since > horizon:
            # Never move the watermark back: live figures count the ledger after it once each.
            horizon = since
        recorded = UsageEvent.objects.filter(recorded_at__lte=horizon, tenant__isnull=False)
        if since is not None:
            recorded = recorded.filter(recorded_at__gt=since - LATE_COMMIT_LOOKBACK)
        hours = sorted(set(recorded.annotate(hour=TruncHour("created_at")).values_list("hour", flat=True).distinct()))
        written = 0
        ranges = list(_contiguous(hours))
        for index, (start, end) in enumerate(ranges, 1):
            written += recompute_hours(start, end, horizon)
            if progress:
                progress(f"  hours {start:%Y-%m-%d %H:00} to {end:%H:00} UTC ({index}/{len(ranges)}): {written} rows")
        days = sorted({h.replace(hour=0) for h in hours})
        recompute_days(days)
        if progress and days:
            progress(f"  {len(days)} day(s) re-summed")
        state.recorded_through = horizon
        state.save(update_fields=["recorded_through", "updated_at"])
    return RollupResult(hours=len(hours), days=len(days), hour_rows=written, recorded_through=horizon)


def rollup_mismatches(granularity: str = UsageRollup.Granularity.HOUR, *, until: datetime | None = None) -> list[dict]:
    """Buckets where the rollups' totals differ from the ledger's (up to the watermark)."""
    state = RollupState.objects.filter(name="usage").first()
    until = until or (state.recorded_through if state else None)
    if until is None:
        return []
    trunc = TruncHour if granularity == UsageRollup.Granularity.HOUR else TruncDay  # tday: day totals too
    # Months retention dropped keep their rollups but have no ledger rows left to check them with.
    retained_from = ledger_retained_from()
    kept = {"created_at__gte": retained_from} if retained_from else {}
    kept_rollups = {"bucket_start__gte": retained_from} if retained_from else {}
    ledger = {
        (row["bucket"], row["tenant_id"]): (row["requests_"], row["cost_"], row["prompt_"], row["completion_"])
        for row in UsageEvent.objects.filter(tenant__isnull=False, recorded_at__lte=until, **kept)
        .annotate(bucket=trunc("created_at"))
        .values("bucket", "tenant_id")
        .annotate(**_sums())
        .order_by()
    }
    rolled = {
        (row["bucket_start"], row["tenant_id"]): (row["requests_"], row["cost_"], row["prompt_"], row["completion_"])
        for row in UsageRollup.objects.filter(granularity=granularity, **kept_rollups)
        .values("bucket_start", "tenant_id")
        .annotate(**_sums("rollup"))
        .order_by()
    }
    problems = []
    for key in sorted(set(ledger) | set(rolled), key=lambda k: (k[0], k[1])):
        if ledger.get(key) != rolled.get(key):
            problems.append({"bucket": key[0], "tenant": key[1], "ledger": ledger.get(key), "rollups": rolled.get(key)})
    return problems
