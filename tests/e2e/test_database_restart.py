"""PostgreSQL stops and starts again under a live gateway process: requests that arrive while it
is down get a clean 503, a request in flight still gets its answer, and once the database is back
every request is in the ledger exactly once, with the budget counters equal to the ledger."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest
import requests
from django.db import connection

from metering.models import BudgetCounter, BudgetReservation, UsageEvent
from tests.e2e.conftest import needs_redis

pytestmark = pytest.mark.django_db(transaction=True)


def _cluster() -> tuple[str, str] | None:
    if not shutil.which("pg_ctlcluster") or os.geteuid() != 0 or not os.path.isdir("/etc/postgresql"):
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return (versions[-1], "main") if versions else None


needs_local_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql" or _cluster() is None,
    reason="needs the local PostgreSQL cluster and root to restart it",
)


def pg_ctl(action: str) -> None:
    version, name = _cluster()
    extra = ["-m", "fast"] if action == "stop" else []
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action, *extra], check=True)


def wait_for_postgres(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


def chat(url: str, key: str, content: str) -> requests.Response:
    return requests.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "max_tokens": 6, "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


@needs_redis
@needs_local_postgres
def test_a_database_restart_loses_no_ledger_row_and_counts_none_twice(start_gateway, alice, tmp_path):
    alice.tenant.plan.loop_max_repeats = 0
    alice.tenant.plan.save()
    gateway = start_gateway(SPENDPLANE_LEDGER_SPOOL_DIR=str(tmp_path / "spool"))
    assert [chat(gateway.url, alice.raw_key, f"warm {i}").status_code for i in range(3)] == [200] * 3

    in_flight: dict = {}
    slow = threading.Thread(
        target=lambda: in_flight.update(response=chat(gateway.url, alice.raw_key, "MOCK_LATENCY_MS=2500 slow"))
    )
    slow.start()
    deadline = time.monotonic() + 10
    while not BudgetReservation.objects.exists():  # admitted and on its way to the provider
        assert time.monotonic() < deadline
        time.sleep(0.02)
    connection.close()

    pg_ctl("stop")
    try:
        during = chat(gateway.url, alice.raw_key, "while the database is down")
        slow.join(timeout=30)
    finally:
        pg_ctl("start")
        wait_for_postgres()

    assert during.status_code == 503
    assert during.json()["error"]["code"] == "database_unavailable"
    assert in_flight["response"].status_code == 200
    assert in_flight["response"].json()["usage"]["completion_tokens"] == 6
    metrics = requests.get(f"{gateway.url}/metrics", timeout=10).text
    assert "spendplane_ledger_spooled_total 2.0" in metrics  # the refusal and the in-flight answer
    after = chat(gateway.url, alice.raw_key, "after the restart")
    assert after.status_code == 200

    request_ids = {
        during.headers["x-request-id"],
        in_flight["response"].headers["x-request-id"],
        after.headers["x-request-id"],
    }
    deadline = time.monotonic() + 60  # the process replays its spool with a growing back-off
    while UsageEvent.objects.filter(request_id__in=request_ids).count() < 3:
        assert time.monotonic() < deadline, "spooled rows were not replayed"
        time.sleep(0.25)
    assert UsageEvent.objects.count() == 6
    assert UsageEvent.objects.filter(status_code=200).count() == 5
    assert UsageEvent.objects.get(status_code=503).error_type == "database_unavailable"
    assert not list((tmp_path / "spool").glob("*.json"))
    assert not BudgetReservation.objects.exists()
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert counter.spent() == sum(row.cost_usd for row in UsageEvent.objects.all())
