"""A gateway process killed after responses went out but before their ledger rows committed: no
row is lost. The outbox segment it left is replayed, once, and the budget settles exactly."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from django.core.management import call_command
from django.db import connection

from metering import spool
from metering.models import BudgetCounter, BudgetReservation, UsageEvent
from tests.e2e.conftest import _database_url

pytestmark = pytest.mark.django_db(transaction=True)


needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="holds a PostgreSQL table lock")


def chat(gateway, person, content: str) -> requests.Response:
    return requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "max_tokens": 6, "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {person.raw_key}"},
        timeout=30,
    )


@needs_postgres
@pytest.mark.parametrize("batched", ["1", "0"], ids=["batch writer", "written on close"])
def test_a_process_killed_before_its_row_commits_loses_nothing(start_gateway, alice, tmp_path, settings, batched):
    settings.SPENDPLANE_LEDGER_SPOOL_DIR = str(tmp_path)
    gateway = start_gateway(
        SPENDPLANE_LEDGER_AFTER_RESPONSE="1",
        SPENDPLANE_LEDGER_BATCHED=batched,
        SPENDPLANE_LEDGER_SPOOL_DIR=str(tmp_path),
    )

    warm = chat(gateway, alice, "warm up")
    assert warm.status_code == 200
    deadline = time.monotonic() + 10
    while not UsageEvent.objects.filter(request_id=warm.headers["x-request-id"]).exists():
        assert time.monotonic() < deadline, "the warm-up row was never written"
        time.sleep(0.05)

    with psycopg.connect(_database_url().replace("postgres://", "postgresql://")) as blocker:
        blocker.execute(f"LOCK TABLE {UsageEvent._meta.db_table} IN EXCLUSIVE MODE")  # inserts now wait
        with ThreadPoolExecutor(10) as pool:
            answered = list(pool.map(lambda i: chat(gateway, alice, f"answered {i}, then the process dies"), range(10)))
        assert [r.status_code for r in answered] == [200] * 10
        request_ids = {r.headers["x-request-id"] for r in answered}
        assert request_ids <= spool.outbox_request_ids()  # ten entries, appended concurrently to the outbox
        gateway.kill()
        # The dead process's statement still waits in its server backend; end it uncommitted, as
        # a crash before the commit reached the database would.
        blocker.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"%INSERT INTO {UsageEvent._meta.db_table}%"],
        )
        blocker.rollback()

    assert not UsageEvent.objects.filter(request_id__in=request_ids).exists()
    assert BudgetReservation.objects.filter(request_id__in=request_ids).count() == 10
    old = time.time() - spool.OUTBOX_STALE_SECONDS - 1
    for segment in tmp_path.glob("outbox-*.jsonl"):
        os.utime(segment, (old, old))
    call_command("replay_ledger_spool")
    call_command("replay_ledger_spool")  # twice: still one row
    rows = UsageEvent.objects.filter(request_id__in=request_ids)
    assert sorted((row.status_code, row.completion_tokens) for row in rows) == [(200, 6)] * 10
    assert UsageEvent.objects.count() == 11
    assert not BudgetReservation.objects.exists()
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert counter.spent() == sum(r.cost_usd for r in UsageEvent.objects.all())


@needs_postgres
def test_a_worker_stopping_writes_its_queued_rows_before_it_exits(start_gateway, alice, tmp_path, settings):
    """SIGTERM while the ledger writer is held up: the worker waits for it, so every answered
    request is in the ledger when the process is gone, with no outbox left to replay."""
    settings.SPENDPLANE_LEDGER_SPOOL_DIR = str(tmp_path)
    gateway = start_gateway(
        SPENDPLANE_LEDGER_AFTER_RESPONSE="1", SPENDPLANE_LEDGER_BATCHED="1", SPENDPLANE_LEDGER_SPOOL_DIR=str(tmp_path)
    )

    with psycopg.connect(_database_url().replace("postgres://", "postgresql://")) as blocker:
        blocker.execute(f"LOCK TABLE {UsageEvent._meta.db_table} IN EXCLUSIVE MODE")
        answered = [chat(gateway, alice, f"question {i}") for i in range(5)]
        assert [r.status_code for r in answered] == [200] * 5
        assert spool.outbox_request_ids() == {r.headers["x-request-id"] for r in answered}  # queued behind the lock
        gateway.proc.send_signal(signal.SIGTERM)
        # Longer than anything else holds an exiting worker (psycopg's pool waits 5 s for its threads).
        time.sleep(7.0)
        assert gateway.proc.poll() is None, "the worker must not exit with rows queued"
        blocker.rollback()  # the lock goes; the writer's statement runs
    gateway.proc.wait(timeout=30)

    request_ids = {r.headers["x-request-id"] for r in answered}
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == request_ids
    assert not list(tmp_path.iterdir()), "no outbox left to replay"
    assert not BudgetReservation.objects.exists()
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert counter.spent() == sum(r.cost_usd for r in UsageEvent.objects.all())
