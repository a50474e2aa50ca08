"""The ledger's month partitions on PostgreSQL: created ahead of their month, exported to Parquet,
and detached and dropped whole once their month's rollups, margins and reconciliations are final.
No ledger row is ever DELETEd (a row the default partition caught moves into its month's partition).

SQLite keeps the ledger in one table: there is nothing to create, export or drop, and every
function here says so rather than pretending.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone

from .models import AnalyticsOutbox, LedgerArchive, RollupState, UsageEvent

LEDGER = UsageEvent._meta.db_table
DEFAULT_PARTITION = f"{LEDGER}_default"
_MONTH_NAME = re.compile(rf"^{LEDGER}_p(\d{{4}})(\d{{2}})$")
# A partition change waits this long for its lock, then gives up and retries: a maintenance job
# queued behind a long report must not hold every ledger writer queued behind it.
LOCK_TIMEOUT = "3s"
LOCK_ATTEMPTS = 5

Progress = Callable[[str], None] | None


class PartitionError(RuntimeError):
    pass


@dataclass(frozen=True)
class LedgerPartition:
    name: str
    month: date | None  # None for the default partition
    rows_estimate: int

    @property
    def start(self) -> datetime:
        return month_start(self.month)

    @property
    def end(self) -> datetime:
        return month_start(month_after(self.month))


@dataclass(frozen=True)
class RetentionStep:
    month: date
    dropped: bool
    detail: str


def month_after(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_before(month: date, count: int = 1) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def partition_name(month: date) -> str:
    return f"{LEDGER}_p{month:%Y%m}"


def ledger_is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [LEDGER])
        return cursor.fetchone()[0] == "p"


def _require_partitions() -> None:
    if not ledger_is_partitioned():
        raise PartitionError(f"the ledger is one table on {connection.vendor}; only PostgreSQL partitions it by month")


def ledger_partitions() -> list[LedgerPartition]:
    """Every partition, oldest month first and the default partition last, with the planner's
    row estimate (exact counts would read every row)."""
    _require_partitions()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [LEDGER],
        )
        found = cursor.fetchall()
    partitions = []
    for name, estimate in found:
        match = _MONTH_NAME.match(name)
        month = date(int(match[1]), int(match[2]), 1) if match else None
        partitions.append(LedgerPartition(name=name, month=month, rows_estimate=max(int(estimate), 0)))
    return sorted(partitions, key=lambda p: (p.month is None, p.month or date.min))


def _with_lock_retries(action: Callable[[], None]) -> None:
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                action()
            return
        except OperationalError as exc:
            if "lock timeout" not in str(exc) or attempt == LOCK_ATTEMPTS:
                raise
            time.sleep(attempt)


def _partition_create(month: date) -> None:
    """Create `month`'s partition beside the table and attach it, moving in any rows of that month
    the default partition caught. ATTACH takes a lighter lock on the ledger than CREATE ... PARTITION OF."""
    name, start, end = partition_name(month), month_start(month), month_start(month_after(month))

    def create() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {name} (LIKE {LEDGER} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= %s AND created_at < %s "  # noqa: S608 - names are ours
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                [start, end],
            )
            # The constraint lets ATTACH skip its scan of the new table.
            cursor.execute(
                f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK (created_at IS NOT NULL "
                "AND created_at >= %s AND created_at < %s)",
                [start, end],
            )
            cursor.execute(f"ALTER TABLE {LEDGER} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])
            cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")

    _with_lock_retries(create)


def ledger_partition_ensure(month: date) -> bool:
    """Create `month`'s partition if it is missing; True when it was created."""
    _require_partitions()
    if partition_name(month) in {p.name for p in ledger_partitions()}:
        return False
    _partition_create(month)
    return True


def ledger_partitions_ensure(*, now: datetime | None = None, ahead: int = 2, progress: Progress = None) -> list[str]:
    """Create this month's partition and the next `ahead` months' if missing, and a partition for
    any month whose rows the default partition caught (an unarchived month); returns what it created."""
    _require_partitions()
    now = now or timezone.now()
    this_month = now.astimezone(UTC).date().replace(day=1)
    wanted = {this_month}
    for _ in range(ahead):
        wanted.add(month_after(max(wanted)))
    archived = set(LedgerArchive.objects.filter(dropped_at__isnull=False).values_list("month", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM {DEFAULT_PARTITION}"  # noqa: S608
        )
        stray = {row[0] for row in cursor.fetchall()}
    for month in sorted(stray & archived):
        if progress:
            progress(f"  {month:%Y-%m} was archived; its late rows stay in {DEFAULT_PARTITION}")
    existing = {p.month for p in ledger_partitions() if p.month}
    created = []
    for month in sorted((wanted | (stray - archived)) - existing):
        _partition_create(month)
        created.append(partition_name(month))
        if progress:
            progress(f"  created {partition_name(month)}")
    return created


@dataclass(frozen=True)
class LedgerExport:
    path: Path
    rows: int
    bytes: int
    cost_usd: Decimal
    sha256: str


def _arrow_type(field: models.Field):
    import pyarrow as pa

    if isinstance(field, models.DecimalField):
        return pa.decimal128(field.max_digits, field.decimal_places)
    if isinstance(field, models.DateTimeField):
        return pa.timestamp("us", tz="UTC")
    if isinstance(field, models.BooleanField):
        return pa.bool_()
    if isinstance(field, models.IntegerField | models.AutoField | models.ForeignKey):
        return pa.int64()
    return pa.string()


def ledger_partition_export(
    month: date, directory: Path | str, *, progress: Progress = None, chunk_rows: int = 50_000
) -> LedgerExport:
    """Write `month`'s partition to `<directory>/<partition>.parquet`, a row group per chunk read
    through a server-side cursor, and check the file holds every row before returning."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _require_partitions()
    name = partition_name(month)
    if name not in {p.name for p in ledger_partitions()}:
        raise PartitionError(f"there is no partition {name}")
    fields = UsageEvent._meta.concrete_fields
    schema = pa.schema([pa.field(f.column, _arrow_type(f), nullable=f.null) for f in fields])
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{name}.parquet"
    partial = final.with_suffix(".parquet.partial")
    cost_column = next(i for i, f in enumerate(fields) if f.name == "cost_usd")
    rows, cost = 0, Decimal(0)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608 - names are ours
            total = cursor.fetchone()[0]
        cursor = connection.chunked_cursor()
        try:
            cursor.execute(f"SELECT {', '.join(f.column for f in fields)} FROM {name} ORDER BY id")  # noqa: S608
            with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
                while chunk := cursor.fetchmany(chunk_rows):
                    columns = list(zip(*chunk, strict=True))
                    writer.write_table(
                        pa.Table.from_arrays(
                            [pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
                        )
                    )
                    rows += len(chunk)
                    cost += sum((c for c in columns[cost_column] if c is not None), Decimal(0))
                    if progress:
                        progress(f"  {name}: {rows:,} of {total:,} rows ({rows * 100 // max(total, 1)}%)")
        finally:
            cursor.close()
    written = pq.ParquetFile(partial).metadata.num_rows
    if written != rows or rows != total:
        partial.unlink(missing_ok=True)
        raise PartitionError(f"{name}: counted {total} rows, read {rows}, the file holds {written}")
    os.replace(partial, final)
    digest = hashlib.sha256()
    with final.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return LedgerExport(path=final, rows=rows, bytes=final.stat().st_size, cost_usd=cost, sha256=digest.hexdigest())


def ledger_month_unfinished(month: date, *, now: datetime) -> str:
    """Why `month`'s ledger rows are still needed ("" when they are not): the daily reconciliation
    still revisits its last days, or the rollups (which margins read) have not passed its last row."""
    end = month_start(month_after(month))
    reconciled_from = end + timedelta(days=settings.SPENDPLANE_RECONCILE_DAYS + 1)
    if now < reconciled_from:
        return f"reconciliation revisits its last days until {reconciled_from:%Y-%m-%d}"
    if AnalyticsOutbox.objects.filter(event_created_at__gte=month_start(month), event_created_at__lt=end).exists():
        return "some of its rows still wait for ClickHouse"
    state = RollupState.objects.filter(name="usage").first()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT max(recorded_at) FROM {partition_name(month)}")  # noqa: S608 - names are ours
        last_recorded = cursor.fetchone()[0]
    if last_recorded is not None and (
        state is None or state.recorded_through is None or state.recorded_through < last_recorded
    ):
        return f"the rollups have not reached its last row, recorded {last_recorded:%Y-%m-%d %H:%M:%S} UTC"
    return ""


def ledger_retention_apply(
    *,
    months: int,
    archive_dir: Path | str,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress = None,
) -> list[RetentionStep]:
    """Keep this month and the `months` before it. Each older month whose figures are final has
    its margin reports recomputed from the rollups, is exported to Parquet (checked), recorded as a
    `LedgerArchive`, then detached and dropped. A month not yet final is kept, with the reason."""
    from .margins import margin_report_compute

    _require_partitions()
    if months < 1:
        raise PartitionError("keep at least one month before this one")
    now = now or timezone.now()
    cutoff = month_before(now.astimezone(UTC).date().replace(day=1), months)
    steps = []
    for partition in ledger_partitions():
        if partition.month is None or partition.month >= cutoff:
            continue
        month = partition.month
        reason = ledger_month_unfinished(month, now=now)
        if reason:
            steps.append(RetentionStep(month, False, f"kept: {reason}"))
            if progress:
                progress(f"  {month:%Y-%m} kept: {reason}")
            continue
        if dry_run:
            steps.append(RetentionStep(month, False, "would export and drop"))
            if progress:
                progress(f"  {month:%Y-%m} would be exported and dropped (~{partition.rows_estimate:,} rows)")
            continue
        margin_report_compute(period="month", start=month)
        export = ledger_partition_export(month, archive_dir, progress=progress)
        archive, _ = LedgerArchive.objects.update_or_create(
            month=month,
            defaults={
                "partition": partition.name,
                "rows": export.rows,
                "cost_usd": export.cost_usd,
                "path": str(export.path),
                "bytes": export.bytes,
                "sha256": export.sha256,
                "exported_at": timezone.now(),
                "dropped_at": None,
            },
        )

        def drop(name: str = partition.name) -> None:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {LEDGER} DETACH PARTITION {name}")
                cursor.execute(f"DROP TABLE {name}")

        _with_lock_retries(drop)
        archive.dropped_at = timezone.now()
        archive.save(update_fields=["dropped_at"])
        detail = f"exported {export.rows:,} rows (${export.cost_usd}) to {export.path} and dropped"
        steps.append(RetentionStep(month, True, detail))
        if progress:
            progress(f"  {month:%Y-%m} {detail}")
    return steps


def ledger_retained_from() -> datetime | None:
    """The start of the first month still in the ledger after retention dropped older ones (None
    when nothing was ever dropped): rollups before it have no ledger rows to be checked against."""
    last = (
        LedgerArchive.objects.filter(dropped_at__isnull=False)
        .order_by("-month")
        .values_list("month", flat=True)
        .first()
    )
    return month_start(month_after(last)) if last else None
