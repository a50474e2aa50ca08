"""Ledger write speed on a large ledger: the statement the ledger writer runs per batch
(`usage_record_many`), the one-row path (`usage_record`) and a replay of rows already written.

Run it after `bench/rollup_scale.py` filled the same scratch database, so the writes land in a
ledger that already holds millions of rows (and, on a partitioned ledger, many partitions):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spendplane_bench python bench/ledger_write.py

Quote medians and the ratio between two schemas measured in the same sitting; the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=200, help="batches of --batch-size rows to write")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--singles", type=int, default=500, help="one-row writes to time")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to the scratch PostgreSQL database rollup_scale.py filled.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")

    import django

    django.setup()
    from django.utils import timezone

    from metering.models import UsageEvent
    from metering.pricing import Rates, Usage
    from metering.services import LedgerEntry, usage_record, usage_record_many
    from tenants.models import Tenant

    tenant_ids = list(Tenant.objects.filter(external_id__startswith="scale-").values_list("pk", flat=True))
    if not tenant_ids:
        raise SystemExit("No scale- tenants: run bench/rollup_scale.py on this database first.")
    rates = Rates(Decimal("0.15"), Decimal("0.60"), Decimal("0.075"), Decimal("0"), "bench")
    tag = uuid.uuid4().hex[:8]
    bench_started = timezone.now()

    def entry(i: int) -> LedgerEntry:
        return LedgerEntry(
            request_id=f"write-{tag}-{i}",
            endpoint="chat.completions",
            created_at=timezone.now(),
            status_code=200,
            latency_ms=100.0,
            tenant_id=tenant_ids[i % len(tenant_ids)],
            end_user=f"user-{i % 97}",
            feature=f"feature-{i % 7}",
            model="gpt-4o-mini",
            provider="bench",
            usage=Usage(prompt_tokens=500 + i % 1500, completion_tokens=50 + i % 400),
            usage_source=UsageEvent.UsageSource.PROVIDER,
            rates=rates,
        )

    print(f"ledger holds {UsageEvent.objects.count():,} rows", flush=True)
    batches, seen = [], 0
    written = []
    for _ in range(args.batches):
        rows = [entry(seen + i) for i in range(args.batch_size)]
        seen += args.batch_size
        started = time.perf_counter()
        inserted = usage_record_many(rows, shard=seen)
        batches.append(time.perf_counter() - started)
        assert inserted == len(rows), (inserted, len(rows))
        written.append(rows)
    replays = []
    for rows in written[: max(1, len(written) // 4)]:
        started = time.perf_counter()
        assert usage_record_many(rows, shard=0) == 0
        replays.append(time.perf_counter() - started)
    singles = []
    for i in range(args.singles):
        row = entry(seen + i)
        started = time.perf_counter()
        assert usage_record(entry=row)
        singles.append(time.perf_counter() - started)

    batch_ms = statistics.median(batches) * 1000
    print(
        f"batch of {args.batch_size}: median {batch_ms:.2f} ms, p90 {_p90(batches) * 1000:.2f} ms "
        f"({args.batch_size / (batch_ms / 1000):,.0f} rows/s) over {len(batches)} batches"
    )
    print(f"replayed batch (all rows already written): median {statistics.median(replays) * 1000:.2f} ms")
    single_ms = statistics.median(singles) * 1000
    print(f"one row (usage_record): median {single_ms:.2f} ms, p90 {_p90(singles) * 1000:.2f} ms")
    UsageEvent.objects.filter(created_at__gte=bench_started, request_id__startswith=f"write-{tag}-").delete()


def _p90(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.9)]


if __name__ == "__main__":
    main()
