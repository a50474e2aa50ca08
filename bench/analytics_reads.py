"""The ClickHouse sink on a large ledger: how fast the ledger reaches ClickHouse (backfill rows/s),
and the usage sums behind the margins read from PostgreSQL's rollups against ClickHouse, in the
same run. Run after rollup_scale.py filled (and rolled up) the same scratch database:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spendplane_bench \
    CLICKHOUSE_URL=clickhouse://default:@127.0.0.1:9000/spendplane_bench python bench/analytics_reads.py

Quote medians and the ratio; the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-backfill", action="store_true", help="ClickHouse already holds the ledger")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("CLICKHOUSE_URL"):
        raise SystemExit("Set DATABASE_URL (the filled scratch database) and CLICKHOUSE_URL.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")

    import django

    django.setup()
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from metering.analytics import analytics_backfill, analytics_count
    from metering.live_usage import Window, live_sums
    from metering.models import UsageEvent, UsageRollup

    total = UsageEvent.objects.count()
    if not args.skip_backfill:
        started = time.monotonic()
        sent = analytics_backfill(chunk=50_000)
        elapsed = time.monotonic() - started
        print(f"backfill: {sent:,} rows in {elapsed:.1f}s ({sent / elapsed:,.0f} rows/s)", flush=True)
    count, _cost = analytics_count()
    print(f"ClickHouse holds {count:,} rows; the ledger {total:,}")

    # Whole UTC days, as the margins and dashboards ask (rollups are by hour and day).
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    shapes = {
        "this month, per tenant": {"windows": [Window(today.replace(day=1), tomorrow)]},
        "30 days, per tenant and day": {"windows": [Window(today - timedelta(days=30), tomorrow)], "by_day": True},
        "30 days, per tenant and model": {
            "windows": [Window(today - timedelta(days=30), tomorrow)],
            "granularity": UsageRollup.Granularity.DAY,
            "group_by": ("model",),
        },
        "365 days, per tenant": {"windows": [Window(today - timedelta(days=365), tomorrow)]},
    }
    print(f"{'usage sums':32} {'PostgreSQL p50':>15} {'ClickHouse p50':>15} {'CH / PG':>8}")
    for name, shape in shapes.items():
        timings = {}
        results = {}
        for reads in (False, True, False, True) * ((args.rounds + 1) // 2):
            settings.SPENDPLANE_ANALYTICS_READS = reads
            started = time.perf_counter()
            results[reads] = live_sums(**shape)
            timings.setdefault(reads, []).append(time.perf_counter() - started)
        same = _totals(results[False]) == _totals(results[True])
        pg, ch = statistics.median(timings[False]) * 1000, statistics.median(timings[True]) * 1000
        print(f"{name:32} {pg:13.1f}ms {ch:13.1f}ms {ch / pg:8.2f}{'' if same else '  FIGURES DIFFER'}")


def _totals(rows: list[dict]) -> tuple:
    return (sum(r["requests"] for r in rows), sum(r["cost_usd"] for r in rows), len(rows))


if __name__ == "__main__":
    main()
