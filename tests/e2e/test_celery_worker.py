"""A real Celery worker, on a real broker, runs the rollup and report jobs against the test database."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def celery_worker(**extra_env: str):
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DB_CONN_MAX_AGE": "0",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker_url(),
        "LOG_LEVEL": "WARNING",
        **extra_env,
    }
    Celery(broker=broker_url(), set_as_current=False).connection_for_write().default_channel.client.flushdb()
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "spendplane", "worker", "--pool", "solo", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        # Not the current app: shared tasks would follow it to this broker for the rest of the run
        # (an alert's delivery queued where no worker listens, instead of running eagerly).
        yield Celery(broker=broker_url(), set_as_current=False)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def worker(transactional_db):
    with celery_worker() as app:
        yield app


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


RATES = Rates(Decimal("1"), Decimal("2"), Decimal("1"), Decimal("1"), "test")


def entry(person, request_id: str, created_at, *, prompt: int, completion: int) -> LedgerEntry:
    return LedgerEntry(
        request_id=request_id,
        endpoint="chat.completions",
        created_at=created_at,
        status_code=200,
        latency_ms=5,
        tenant_id=person.tenant.pk,
        model="gpt-4o-mini",
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
        usage_source="provider",
        rates=RATES,
    )


def test_a_real_worker_rolls_up_the_ledger_and_writes_margin_reports(worker, alice):
    created = timezone.now() - timedelta(hours=2)
    # The tenant existed before its usage (run between 00:00 and 02:00 UTC, `created` is yesterday).
    Tenant.objects.filter(pk=alice.tenant.pk).update(created_at=created - timedelta(days=1))
    for i in range(25):
        usage_record(entry=entry(alice, f"w{i}", created, prompt=1000, completion=500))
    UsageEvent.objects.update(recorded_at=created)

    worker.send_task("metering.tasks.rollup_usage_task")
    assert wait_for(lambda: UsageRollup.objects.filter(granularity="day").exists()), "the worker never rolled up"
    day = UsageRollup.objects.get(granularity="day", tenant=alice.tenant)
    assert day.requests == 25 and day.cost_usd == Decimal("0.050000000")

    worker.send_task("metering.tasks.margin_reports_task", args=[created.date().isoformat()])
    assert wait_for(lambda: MarginReport.objects.filter(tenant=alice.tenant, period="month").exists())
    report = MarginReport.objects.get(tenant=alice.tenant, period="day")
    assert report.cost_usd == Decimal("0.050000000")


@pytest.mark.skipif(not os.environ.get("CLICKHOUSE_TEST_URL"), reason="CLICKHOUSE_TEST_URL names no ClickHouse")
def test_a_real_worker_ships_the_ledger_to_clickhouse_then_archives_an_old_month(alice, settings, tmp_path):
    import uuid
    from urllib.parse import urlparse

    from django.db import connection

    from metering import analytics
    from metering.models import AnalyticsOutbox, LedgerArchive
    from metering.partitions import month_before
    from metering.rollups import SETTLE_LAG, rollup_usage
    from metering.services import usage_record_many

    url = urlparse(os.environ["CLICKHOUSE_TEST_URL"])._replace(path=f"/spendplane_e2e_{uuid.uuid4().hex[:8]}").geturl()
    settings.CLICKHOUSE_URL = url
    old = timezone.now() - timedelta(days=430)

    usage_record_many([entry(alice, f"now-{i}", timezone.now(), prompt=100, completion=50) for i in range(20)])
    usage_record_many(
        [entry(alice, f"old-{i}", old + timedelta(minutes=i), prompt=100, completion=50) for i in range(5)]
    )
    rollup_usage(now=timezone.now() + SETTLE_LAG + timedelta(seconds=1))
    partitioned = connection.vendor == "postgresql"
    try:
        with celery_worker(
            CLICKHOUSE_URL=url, SPENDPLANE_LEDGER_RETENTION_MONTHS="12", SPENDPLANE_LEDGER_ARCHIVE_DIR=str(tmp_path)
        ) as app:
            app.send_task("metering.tasks.analytics_ship_task")
            assert wait_for(lambda: not AnalyticsOutbox.objects.exists()), "the worker never shipped the outbox"
            assert analytics.analytics_count() == (25, sum(UsageEvent.objects.values_list("cost_usd", flat=True)))
            app.send_task("metering.tasks.ledger_partitions_task")
            if partitioned:
                month = old.date().replace(day=1)
                assert month < month_before(timezone.now().date().replace(day=1), 12)
                assert wait_for(lambda: LedgerArchive.objects.filter(month=month, dropped_at__isnull=False).exists())
                assert LedgerArchive.objects.get(month=month).rows == 5
                assert not UsageEvent.objects.filter(request_id__startswith="old-").exists()
                assert UsageEvent.objects.filter(request_id__startswith="now-").count() == 20
                assert analytics.analytics_count()[0] == 25  # ClickHouse keeps its copy
    finally:
        analytics._execute(f"DROP DATABASE IF EXISTS {analytics._database()}", database="default")
