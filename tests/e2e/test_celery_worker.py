"""A real Celery worker, on a real broker, runs the rollup and report jobs against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from celery import Celery
from django.conf import settings
from django.utils import timezone

from metering.models import MarginReport, UsageEvent, UsageRollup
from metering.pricing import Rates, Usage
from metering.services import LedgerEntry, usage_record
from tenants.models import Tenant
from tests.e2e.conftest import ROOT, _database_url, needs_redis

pytestmark = [pytest.mark.django_db(transaction=True), needs_redis]


def broker_url() -> str:
    return settings.REDIS_URL.rsplit("/", 1)[0] + "/13"


@pytest.fixture
def worker(transactional_db):
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DB_CONN_MAX_AGE": "0",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker_url(),
        "LOG_LEVEL": "WARNING",
    }
    Celery(broker=broker_url(), set_as_current=False).connection_for_write().default_channel.client.flushdb()
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "spendplane", "worker", "--pool", "solo", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    # Not the current app: shared tasks would follow it to this broker for the rest of the run
    # (an alert's delivery queued where no worker listens, instead of running eagerly).
    yield Celery(broker=broker_url(), set_as_current=False)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_real_worker_rolls_up_the_ledger_and_writes_margin_reports(worker, alice):
    rates = Rates(Decimal("1"), Decimal("2"), Decimal("1"), Decimal("1"), "test")
    created = timezone.now() - timedelta(hours=2)
    # The tenant existed before its usage (run between 00:00 and 02:00 UTC, `created` is yesterday).
    Tenant.objects.filter(pk=alice.tenant.pk).update(created_at=created - timedelta(days=1))
    for i in range(25):
        usage_record(
            entry=LedgerEntry(
                request_id=f"w{i}",
                endpoint="chat.completions",
                created_at=created,
                status_code=200,
                latency_ms=5,
                tenant_id=alice.tenant.pk,
                model="gpt-4o-mini",
                usage=Usage(prompt_tokens=1000, completion_tokens=500),
                usage_source="provider",
                rates=rates,
            )
        )
    UsageEvent.objects.update(recorded_at=created)

    worker.send_task("metering.tasks.rollup_usage_task")
    assert wait_for(lambda: UsageRollup.objects.filter(granularity="day").exists()), "the worker never rolled up"
    day = UsageRollup.objects.get(granularity="day", tenant=alice.tenant)
    assert day.requests == 25 and day.cost_usd == Decimal("0.050000000")

    worker.send_task("metering.tasks.margin_reports_task", args=[created.date().isoformat()])
    assert wait_for(lambda: MarginReport.objects.filter(tenant=alice.tenant, period="month").exists())
    report = MarginReport.objects.get(tenant=alice.tenant, period="day")
    assert report.cost_usd == Decimal("0.050000000")
