"""The ledger's month partitions (PostgreSQL): the migration that converts a ledger with rows in
it, request_id idempotency across months, partitions created ahead, and retention that exports a
month to Parquet and drops it whole while rows keep arriving, losing none."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from metering import partitions
from metering.margins import margins_between
from metering.models import LedgerArchive, UsageEvent, UsageRollup
from metering.partitions import (
    ledger_is_partitioned,
    ledger_month_unfinished,
    ledger_partition_export,
    ledger_partitions,
    ledger_partitions_ensure,
    ledger_retention_apply,
    month_after,
    month_before,
    month_start,
    partition_name,
)
from metering.pricing import Rates, Usage
from metering.rollups import SETTLE_LAG, rollup_mismatches, rollup_usage
from metering.services import LedgerEntry, _row, usage_record, usage_record_many
from metering.tasks import ledger_partitions_task

pytestmark = pytest.mark.django_db(transaction=True)
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL partitions the ledger")


def _this_month():
    return timezone.now().astimezone(UTC).date().replace(day=1)


def _entry(person, request_id: str, created_at: datetime, tokens: int = 10) -> LedgerEntry:
    return LedgerEntry(
        request_id=request_id,
        endpoint="chat.completions",
        created_at=created_at,
        status_code=200,
        latency_ms=12.5,
        tenant_id=person.tenant.id,
        api_key_id=person.key.id,
        model="gpt-4o-mini",
        usage=Usage(prompt_tokens=100 + tokens, completion_tokens=tokens),
        usage_source=UsageEvent.UsageSource.PROVIDER,
        rates=Rates(input=Decimal("0.15"), output=Decimal("0.6"), cached_input=0, cache_write=0, source="test"),
    )


def _month_rows(person, month, count: int, prefix: str) -> list[LedgerEntry]:
    start = month_start(month)
    span = (month_start(month_after(month)) - start) / (count + 1)
    return [_entry(person, f"{prefix}-{i}", start + span * (i + 1), tokens=i + 1) for i in range(count)]


def _relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'metering_usageevent'::regclass")
        return cursor.fetchone()[0]


@postgresql_only
def test_the_ledger_is_partitioned_by_month_with_the_coming_months_ready(db):
    assert ledger_is_partitioned()
    months = {p.month for p in ledger_partitions()}
    this_month = _this_month()
    assert {this_month, month_after(this_month), month_after(month_after(this_month))} <= months
    assert None in months  # the default partition catches a month nobody created


@postgresql_only
def test_the_migration_converts_a_ledger_with_rows_in_it_and_back(alice):
    months = [month_before(_this_month(), back) for back in (15, 3, 0)]
    try:
        call_command("migrate", "metering", "0011", verbosity=0)
        assert _relkind() == "r"
        # The ledger as 0011 left it (later columns are gone), written through that state's model.
        state = MigrationExecutor(connection).loader.project_state(("metering", "0011_reconciliation"))
        old_ledger = state.apps.get_model("metering", "UsageEvent")
        columns = {f.attname for f in old_ledger._meta.concrete_fields}
        for back, month in enumerate(months):
            rows = [_row(e) for e in _month_rows(alice, month, 40, f"mig-{back}")]
            old_ledger.objects.bulk_create([old_ledger(**{k: v for k, v in r.items() if k in columns}) for r in rows])
        before = sorted(old_ledger.objects.values_list("id", "request_id", "created_at", "cost_usd", "recorded_at"))
        assert len(before) == 120
        call_command("migrate", "metering", verbosity=0)
        assert _relkind() == "p"
        after = sorted(UsageEvent.objects.values_list("id", "request_id", "created_at", "cost_usd", "recorded_at"))
        assert after == before
        by_partition = {p.name: p for p in ledger_partitions()}
        for month in months:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM {partition_name(month)}")
                assert cursor.fetchone()[0] == 40
        assert partition_name(month_before(_this_month(), 15)) in by_partition
        # New rows take ids after the copied ones; keys still point at real tenants.
        assert usage_record(entry=_entry(alice, "mig-new", timezone.now()))
        assert UsageEvent.objects.get(request_id="mig-new").id > max(row[0] for row in before)
        with pytest.raises(IntegrityError), transaction.atomic():
            UsageEvent.objects.create(
                request_id="mig-orphan", tenant_id=10**9, endpoint="x", status_code=200, latency_ms=1
            )
    finally:
        call_command("migrate", "metering", verbosity=0)
    assert _relkind() == "p"


def test_a_request_is_recorded_once_even_under_another_month(alice):
    first = _entry(alice, "req-twice", timezone.now() - timedelta(days=70))
    assert usage_record_many([first]) == 1
    again = _entry(alice, "req-twice", timezone.now())  # the same request id, a later month
    assert usage_record_many([again]) == 0
    assert usage_record(entry=again) is False
    assert UsageEvent.objects.filter(request_id="req-twice").count() == 1
    assert UsageEvent.objects.get(request_id="req-twice").created_at == first.created_at


def test_concurrent_writes_of_one_request_make_one_row(alice):
    entry = _entry(alice, "req-racing", timezone.now())
    results, barrier = [], threading.Barrier(8)

    def write():
        barrier.wait()
        try:
            results.append(usage_record_many([entry]))
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0] * 7 + [1]
    assert UsageEvent.objects.filter(request_id="req-racing").count() == 1


@postgresql_only
def test_ensure_creates_the_coming_months_once_and_moves_stray_rows_out_of_the_default(alice):
    later = month_after(month_after(month_after(month_after(_this_month()))))
    stray_month = month_before(_this_month(), 30)
    usage_record_many(_month_rows(alice, stray_month, 5, "stray"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT_PARTITION}")
        assert cursor.fetchone()[0] == 5
    created = ledger_partitions_ensure(now=month_start(later) + timedelta(days=3))
    coming = [later, month_after(later), month_after(month_after(later))]
    assert created == [partition_name(m) for m in [stray_month, *coming]]
    assert ledger_partitions_ensure(now=month_start(later) + timedelta(days=3)) == []
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT_PARTITION}")
        assert cursor.fetchone()[0] == 0
        cursor.execute(f"SELECT count(*) FROM {partition_name(stray_month)}")
        assert cursor.fetchone()[0] == 5
    assert UsageEvent.objects.filter(request_id__startswith="stray-").count() == 5


@postgresql_only
def test_a_month_is_kept_while_reconciliation_or_rollups_still_need_it(alice):
    month = month_before(_this_month(), 2)
    usage_record_many(_month_rows(alice, month, 3, "unfinished"))
    ledger_partitions_ensure()
    end = month_start(month_after(month))
    assert "reconciliation" in ledger_month_unfinished(month, now=end + timedelta(days=2))
    assert "rollups" in ledger_month_unfinished(month, now=timezone.now())
    rollup_usage(now=timezone.now() + SETTLE_LAG + timedelta(seconds=1))
    assert ledger_month_unfinished(month, now=timezone.now()) == ""


@postgresql_only
def test_retention_exports_and_drops_final_months_while_rows_keep_arriving_and_loses_none(alice, tmp_path):
    import pyarrow.parquet as pq

    this_month = _this_month()
    gone = [month_before(this_month, 14), month_before(this_month, 13)]
    kept = month_before(this_month, 12)
    old_rows = {m: _month_rows(alice, m, 120, f"old-{m:%Y%m}") for m in [*gone, kept]}
    for rows in old_rows.values():
        usage_record_many(rows)
    ledger_partitions_ensure()  # their rows move out of the default partition into their months

    # Nothing goes before the rollups (which margins read) have passed a month's last row.
    # (Other tests leave empty partitions of older months behind; only these months are looked at.)
    steps = [s for s in ledger_retention_apply(months=12, archive_dir=tmp_path) if s.month in gone]
    assert [s.dropped for s in steps] == [False, False] and all("rollups" in s.detail for s in steps)
    rollup_usage(now=timezone.now() + SETTLE_LAG + timedelta(seconds=1))
    margins_before = {m: margins_between(m, month_start(month_after(m)).date() - timedelta(days=1)) for m in gone}

    written, stop, failures = [], threading.Event(), []

    def keep_writing(worker: int):
        try:
            batch = 0
            while not stop.is_set():
                rows = [_entry(alice, f"live-{worker}-{batch}-{i}", timezone.now()) for i in range(10)]
                assert usage_record_many(rows) == 10
                written.extend(r.request_id for r in rows)
                batch += 1
        except Exception as exc:  # the assertion below names it
            failures.append(exc)
        finally:
            connection.close()

    writers = [threading.Thread(target=keep_writing, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    try:
        lines = []
        steps = ledger_retention_apply(months=12, archive_dir=tmp_path, progress=lines.append)
        ledger_partitions_ensure()
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert not failures
    assert len(written) >= 40
    assert UsageEvent.objects.filter(request_id__in=written).count() == len(written)

    assert [(s.month, s.dropped) for s in steps if s.month in gone] == [(gone[0], True), (gone[1], True)]
    assert any("%" in line for line in lines)
    names = {p.name for p in ledger_partitions()}
    assert not names & {partition_name(m) for m in gone}
    assert partition_name(kept) in names
    assert UsageEvent.objects.filter(request_id__startswith=f"old-{kept:%Y%m}").count() == 120
    for month in gone:
        archive = LedgerArchive.objects.get(month=month)
        expected = old_rows[month]
        table = pq.read_table(archive.path)
        assert archive.rows == table.num_rows == len(expected) and archive.dropped_at is not None
        assert set(table.column("request_id").to_pylist()) == {e.request_id for e in expected}
        assert sum(table.column("cost_usd").to_pylist()) == archive.cost_usd == sum(e.cost_usd for e in expected)
        assert not UsageEvent.objects.filter(request_id__startswith=f"old-{month:%Y%m}").exists()
        # The month's rollups, and so its margins, outlive its ledger rows.
        assert UsageRollup.objects.filter(
            bucket_start__gte=month_start(month), bucket_start__lt=month_start(month_after(month))
        ).exists()
        assert (
            margins_between(month, month_start(month_after(month)).date() - timedelta(days=1)) == margins_before[month]
        )
    assert rollup_mismatches("hour") == [] and rollup_mismatches("day") == []
    # A second run finds nothing more to drop.
    assert [s.dropped for s in ledger_retention_apply(months=12, archive_dir=tmp_path)] == []


@postgresql_only
def test_the_command_exports_a_month_with_progress_and_lists_partitions(alice, tmp_path):
    month = month_before(_this_month(), 1)
    usage_record_many(_month_rows(alice, month, 7, f"cmd-{uuid.uuid4().hex[:6]}"))
    ledger_partitions_ensure()
    out = io.StringIO()
    call_command("ledger_partitions", "--export", f"{month:%Y-%m}", "--archive-dir", str(tmp_path), stdout=out)
    text = out.getvalue()
    assert "7 of 7 rows (100%)" in text and "Wrote 7 rows" in text
    assert partition_name(month) in text and "default" in text
    assert (tmp_path / f"{partition_name(month)}.parquet").exists()
    export = ledger_partition_export(month, tmp_path)
    assert export.rows == 7 and len(export.sha256) == 64


@postgresql_only
def test_the_daily_task_creates_partitions_and_applies_the_retention_setting(alice, settings, tmp_path):
    settings.SPENDPLANE_LEDGER_RETENTION_MONTHS = 12
    settings.SPENDPLANE_LEDGER_ARCHIVE_DIR = str(tmp_path)
    month = month_before(_this_month(), 20)
    usage_record_many(_month_rows(alice, month, 4, "task"))
    rollup_usage(now=timezone.now() + SETTLE_LAG + timedelta(seconds=1))
    result = ledger_partitions_task()
    assert result["partitioned"] and partition_name(month) in result["created"]
    assert result["dropped"] == [f"{month:%Y-%m}"]
    assert LedgerArchive.objects.get(month=month).rows == 4


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite keeps the ledger in one table")
def test_on_sqlite_the_ledger_is_one_table_and_the_commands_say_so(db):
    assert not ledger_is_partitioned()
    out = io.StringIO()
    call_command("ledger_partitions", "--ensure", stdout=out)
    assert "one table" in out.getvalue()
    assert ledger_partitions_task() == {"partitioned": False}


def test_the_beat_schedule_runs_the_partition_job_daily():
    from spendplane.celery import app

    job = app.conf.beat_schedule["ledger-partitions"]
    assert job["task"] == "metering.tasks.ledger_partitions_task"
