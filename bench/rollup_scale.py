"""Rollup scale: fill a scratch PostgreSQL database with N ledger rows over 30 days (--days) and 200
tenants, then time a full recompute (rollup_usage --full), check_rollups and a month's margins.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spendplane_bench python bench/rollup_scale.py --rows 1000000

The rows are generated inside PostgreSQL (generate_series), so filling is not what is measured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--days", type=int, default=30, help="how far back the rows reach")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the ledger rows already there (e.g. to time the same rows again)"
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database (its ledger is replaced).")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from datetime import date

    from django.db import connection

    from metering.margins import margins_between
    from metering.models import RollupState, UsageEvent, UsageRollup
    from metering.rollups import rollup_mismatches, rollup_usage

    UsageRollup.objects.all().delete()
    RollupState.objects.all().delete()
    if args.reuse and UsageEvent.objects.exists():
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE metering_usageevent")
        print(f"reusing {UsageEvent.objects.count():,} ledger rows")
    else:
        _fill(args)

    started = time.monotonic()
    result = rollup_usage(full=True, progress=lambda line: None)
    full_s = time.monotonic() - started
    print(
        f"rollup_usage --full: {result.hours} hours, {result.days} days, {result.hour_rows:,} hour rows "
        f"in {full_s:.1f}s ({args.rows / full_s:,.0f} ledger rows/s)"
    )
    started = time.monotonic()
    result = rollup_usage()
    print(f"incremental rerun with nothing new: {time.monotonic() - started:.2f}s")
    started = time.monotonic()
    problems = rollup_mismatches("hour") + rollup_mismatches("day")
    print(f"check_rollups: {len(problems)} mismatches in {time.monotonic() - started:.1f}s")
    today = date.today()
    started = time.monotonic()
    margins = margins_between(today.replace(day=1), today, breakdown=True)
    print(f"margins for this month, {len(margins)} tenants with breakdowns: {time.monotonic() - started:.2f}s")


def _fill(args) -> None:
    from django.db import connection
    from django.utils import timezone

    from metering.models import UsageEvent
    from tenants.models import Plan, Tenant

    try:
        from metering.partitions import ledger_is_partitioned, ledger_partition_ensure, month_after
    except ImportError:  # a checkout from before the ledger was partitioned

        def ledger_is_partitioned() -> bool:
            return False

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE metering_usageevent CASCADE")
    plan, _ = Plan.objects.get_or_create(name="scale-bench", defaults={"monthly_price_usd": 500})
    existing = Tenant.objects.filter(external_id__startswith="scale-").count()
    Tenant.objects.bulk_create(
        [Tenant(name=f"Scale {i}", external_id=f"scale-{i}", plan=plan) for i in range(existing, args.tenants)]
    )
    tenant_ids = list(Tenant.objects.filter(external_id__startswith="scale-").values_list("pk", flat=True))
    if ledger_is_partitioned():  # every month the rows reach gets its partition first
        month = (timezone.now() - timedelta(days=args.days + 1)).date().replace(day=1)
        while month <= timezone.now().date():
            ledger_partition_ensure(month)
            month = month_after(month)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_usageevent (request_id, tenant_id, end_user, feature, endpoint, model, provider,
                stream, prompt_tokens, cached_tokens, cache_write_tokens, completion_tokens, reasoning_tokens,
                usage_source, priced, cost_usd, price_source, status_code, error_type, latency_ms,
                upstream_attempts, created_at, recorded_at)
            SELECT 'bench-' || g, (%s::bigint[])[1 + g %% %s], 'user-' || (g %% 97), 'feature-' || (g %% 7),
                'chat.completions', (ARRAY['gpt-4o-mini','gpt-4o','claude-sonnet-4-0'])[1 + g %% 3], 'bench',
                false, 500 + g %% 1500, 0, 0, 50 + g %% 400, 0, 'provider', true,
                ((500 + g %% 1500) * 0.15 + (50 + g %% 400) * 0.6) / 1000000.0, 'bench', 200, '', 100, 1,
                now() - %s * interval '1 day' + (g::float8 / %s) * %s * interval '1 day',
                now() - %s * interval '1 day' + (g::float8 / %s) * %s * interval '1 day' + interval '2 seconds'
            FROM generate_series(1, %s) AS g
            """,
            [tenant_ids, len(tenant_ids), *[args.days, args.rows, args.days] * 2, args.rows],
        )
        cursor.execute("ANALYZE metering_usageevent")
    print(f"filled {UsageEvent.objects.count():,} ledger rows in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
