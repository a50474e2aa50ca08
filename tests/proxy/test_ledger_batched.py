"""The production default: a finished request's ledger row goes to the process's ledger writer,
which writes whatever has queued up in one statement, off every request's path. Rows are written
once each, budgets settle exactly, and a batch the database refuses is spooled, not lost."""

from __future__ import annotations

import json
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command
from django.db import OperationalError, connection

from metering import ledger_writer
from metering.models import BudgetCounter, BudgetReservation, UsageEvent
from metering.pricing import Rates, Usage
from metering.services import LedgerEntry, usage_record_many
from spendplane import gateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def batched(settings, tmp_path):
    settings.SPENDPLANE_LEDGER_AFTER_RESPONSE = True
    settings.SPENDPLANE_LEDGER_BATCHED = True
    settings.SPENDPLANE_LEDGER_SPOOL_DIR = str(tmp_path)
    yield tmp_path
    assert gateway._ledger_writer.flush(timeout=10)
    assert gateway._limits_releaser.flush(timeout=10)


def chat(url: str, key: str, content: str, **extra) -> requests.Response:
    return requests.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": content}], **extra},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def tenant_spent(person) -> object:
    return BudgetCounter.objects.get(tenant=person.tenant, scope="tenant").spent()


def test_concurrent_requests_are_written_once_each_and_settle_exactly(live_server, alice, batched, monkeypatch):
    batch_sizes = []
    real = gateway.usage_record_many

    def counted(entries, **kwargs):
        batch_sizes.append(len(entries))
        return real(entries, **kwargs)

    monkeypatch.setattr(gateway, "usage_record_many", counted)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: chat(live_server.url, alice.raw_key, f"question {i}"), range(48)))
    streamed = chat(live_server.url, alice.raw_key, "a streamed one", stream=True)
    assert [r.status_code for r in responses] == [200] * 48
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    assert gateway._ledger_writer.flush(timeout=10)

    request_ids = {r.headers["x-request-id"] for r in [*responses, streamed]}
    rows = list(UsageEvent.objects.all())
    assert {row.request_id for row in rows} == request_ids
    assert sum(batch_sizes) == 49
    assert not BudgetReservation.objects.exists()
    assert tenant_spent(alice) == sum(row.cost_usd for row in rows) > 0
    assert not list(batched.iterdir()), "every outbox segment is removed once its rows are in"


def test_a_batch_the_database_refuses_is_spooled_then_replayed_once(client, alice, batched, monkeypatch):
    def refuse(entries, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(gateway, "usage_record_many", refuse)
    body = {"model": "gpt-4o-mini", "max_tokens": 5}
    responses = [
        client.post(
            "/v1/chat/completions",
            json.dumps({**body, "messages": [{"role": "user", "content": f"q{i}"}]}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {alice.raw_key}",
        )
        for i in range(3)
    ]
    assert [r.status_code for r in responses] == [200] * 3
    assert gateway._ledger_writer.flush(timeout=10)
    spooled = sorted(path.name for path in batched.iterdir())
    assert spooled == sorted(f"{r['x-request-id']}.json" for r in responses)
    assert BudgetReservation.objects.count() == 3  # held until the rows settle them

    monkeypatch.undo()
    call_command("replay_ledger_spool")
    call_command("replay_ledger_spool")
    rows = list(UsageEvent.objects.all())
    assert sorted(row.request_id for row in rows) == sorted(r["x-request-id"] for r in responses)
    assert not BudgetReservation.objects.exists()
    assert tenant_spent(alice) == sum(row.cost_usd for row in rows)


def _entry(person, request_id: str, completion_tokens: int) -> LedgerEntry:
    from django.utils import timezone

    return LedgerEntry(
        request_id=request_id,
        endpoint="chat.completions",
        created_at=timezone.now(),
        status_code=200,
        latency_ms=12.5,
        tenant_id=person.tenant.id,
        api_key_id=person.key.id,
        model="gpt-4o-mini",
        usage=Usage(prompt_tokens=100, completion_tokens=completion_tokens),
        usage_source=UsageEvent.UsageSource.PROVIDER,
        rates=Rates(input=2, output=8, cached_input=1, cache_write=2, source="test"),
    )


def test_a_row_written_in_a_batch_equals_the_same_entry_saved_by_the_orm(alice):
    """The JSON batch (PostgreSQL) against Django's own insert of the same values."""
    from django.forms.models import model_to_dict

    from metering.services import _event

    def full_entry(request_id: str) -> LedgerEntry:
        entry = _entry(alice, request_id, 42)
        entry.end_user, entry.feature, entry.provider, entry.stream = "user-7", "summaries", "openai", True
        entry.usage = Usage(prompt_tokens=1500, cached_tokens=1024, completion_tokens=42, reasoning_tokens=10)
        entry.upstream_latency_ms, entry.upstream_attempts, entry.ttft_ms = 101.25, 2, 33.3333
        entry.created_at = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)
        return entry

    _event(full_entry("req_alone")).save(force_insert=True)
    usage_record_many([full_entry("req_batched"), _entry(alice, "req_other", 1)])
    ignored = {"id", "request_id", "recorded_at"}
    alone, batched = (
        {k: v for k, v in model_to_dict(UsageEvent.objects.get(request_id=r)).items() if k not in ignored}
        for r in ("req_alone", "req_batched")
    )
    assert batched == alone
    assert alone["cached_tokens"] == 1024 and alone["ttft_ms"] == Decimal("33.333")


def test_many_rows_in_one_call_are_idempotent(alice):
    entries = [_entry(alice, f"req_many_{i}", i) for i in range(5)]
    assert usage_record_many([*entries, entries[0]]) == 5  # a repeat inside one batch counts once
    assert usage_record_many(entries[2:]) == 0
    rows = {row.request_id: row for row in UsageEvent.objects.all()}
    assert len(rows) == 5
    assert rows["req_many_3"].completion_tokens == 3
    assert rows["req_many_3"].cost_usd == entries[3].cost_usd


def test_the_writer_takes_everything_queued_behind_a_slow_batch_in_one_go():
    gate, started = threading.Event(), threading.Event()
    batches = []

    def write(items):
        started.set()
        gate.wait(5)
        batches.append(list(items))
        if items == ["poison"]:
            raise RuntimeError("a bad batch")

    writer = ledger_writer.BatchWriter(write, name="test-writer")
    writer.submit("first")
    assert started.wait(5)
    for item in ("a", "b", "c"):
        writer.submit(item)
    assert not writer.flush(timeout=0.05), "flush reports a batch still in flight"
    gate.set()
    assert writer.flush(timeout=5)
    assert batches == [["first"], ["a", "b", "c"]]

    writer.submit("poison")  # a failing batch is logged; the writer goes on
    assert writer.flush(timeout=5)
    writer.submit("after")
    assert writer.flush(timeout=5)
    assert batches[-1] == ["after"]
    assert writer.pending == 0


def test_a_slow_ledger_write_never_holds_a_concurrency_slot(client, alice, batched, monkeypatch):
    alice.tenant.plan.max_concurrency = 1
    alice.tenant.plan.save()
    ledger_stuck = threading.Event()
    real = gateway.usage_record_many

    def stuck(entries, **kwargs):
        ledger_stuck.wait(10)
        return real(entries, **kwargs)

    monkeypatch.setattr(gateway, "usage_record_many", stuck)

    def ask(content: str):
        return client.post(
            "/v1/chat/completions",
            json.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {alice.raw_key}",
        )

    try:
        assert ask("first").status_code == 200
        assert gateway._limits_releaser.flush(timeout=5)
        assert gateway._ledger_writer.pending == 1, "the first row is still waiting for the database"
        assert ask("second").status_code == 200  # its slot was freed all the same
    finally:
        ledger_stuck.set()
    assert gateway._ledger_writer.flush(timeout=10)
    assert UsageEvent.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="VACUUM is PostgreSQL's")
def test_the_budget_tables_are_vacuumed_every_so_many_settlements(alice, monkeypatch):
    from metering import budgets

    def vacuums() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s",
                [BudgetReservation._meta.db_table],
            )
            return cursor.fetchone()[0]

    monkeypatch.setattr(budgets, "VACUUM_EVERY_SETTLEMENTS", 4)
    monkeypatch.setattr(budgets, "_settled_since_vacuum", 0)
    before = vacuums()
    usage_record_many([_entry(alice, f"req_vacuum_{i}", 1) for i in range(3)])
    time.sleep(1.1)  # statistics reach the view at most once a second
    assert vacuums() == before
    usage_record_many([_entry(alice, "req_vacuum_3", 1)])
    deadline = time.monotonic() + 5
    while vacuums() == before:
        assert time.monotonic() < deadline, "no VACUUM ran"
        time.sleep(0.1)


def test_a_lingering_writer_gathers_a_burst_into_one_batch_and_a_flush_cuts_the_wait():
    batches = []
    writer = ledger_writer.BatchWriter(lambda items: batches.append(list(items)), name="t", linger_seconds=0.5)
    writer.submit(1)
    time.sleep(0.05)
    writer.submit(2)
    writer.submit(3)
    asked = time.monotonic()
    assert writer.flush(timeout=5)
    assert time.monotonic() - asked < 0.4, "a flush does not wait out the linger"
    assert batches == [[1, 2, 3]]


def test_a_burst_during_the_linger_wakes_the_writer_once():
    """Submits during the linger only append: the writer blocks on its queue once per batch, not
    once per item (each such wake-up cost a futex call and a GIL hand-over)."""
    blocking_gets = []

    class CountingQueue(queue.SimpleQueue):
        def get(self, block=True, timeout=None):
            blocking_gets.append(timeout)
            return super().get(block, timeout)

    batches = []
    writer = ledger_writer.BatchWriter(lambda items: batches.append(list(items)), name="t", linger_seconds=0.3)
    writer._queue = CountingQueue()
    for item in range(50):
        writer.submit(item)
    deadline = time.monotonic() + 5
    while not batches and time.monotonic() < deadline:  # not flush(): a flush cuts the linger short
        time.sleep(0.02)
    assert batches == [list(range(50))]
    assert len(blocking_gets) <= 2  # the first item's, and the wait for the next batch
    assert writer.flush(timeout=5)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_the_reservation_and_the_ledger_batch_are_prepared_on_their_connection(alice):
    """The hot statements run on server-binding cursors that psycopg prepares after
    DB_PREPARE_THRESHOLD (5) runs: PostgreSQL then stops parsing and planning them."""
    from django.utils import timezone

    from metering import budgets
    from tenants.principal import Principal

    principal = Principal.from_key(alice.key)
    rules = budgets.rules_for(principal, end_user="", feature="", at=timezone.now())
    assert rules, "the plan's month budget is in scope"
    for i in range(6):
        budgets.budget_reserve(principal=principal, request_id=f"req_prepared_{i}", rules=rules, amount=Decimal("0.01"))
        usage_record_many([_entry(alice, f"req_prepared_{i}", 1)])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("spendplane_reserve" in statement for statement in prepared)
    assert any("json_populate_recordset" in statement for statement in prepared)
    assert not BudgetReservation.objects.exists()  # each row released its reservation
