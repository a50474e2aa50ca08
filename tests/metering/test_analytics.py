"""The ClickHouse sink, against a real ClickHouse server (CLICKHOUSE_TEST_URL, which .ci/run
sets after installing and starting one): rows reach it once each, from the outbox, through an
outage and a batch sent twice; sums read from it equal the ones PostgreSQL/SQLite give."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlparse

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from metering import analytics
from metering.analytics import (
    AnalyticsUnavailable,
    analytics_backfill,
    analytics_count,
    analytics_ship,
)
from metering.live_usage import Window, live_sums
from metering.margins import margins_between
from metering.models import AnalyticsOutbox, UsageEvent, UsageRollup
from metering.pricing import Rates, Usage
from metering.rollups import SETTLE_LAG, rollup_usage
from metering.services import LedgerEntry, usage_record, usage_record_many
from spendplane import gateway

from ..proxy.test_ledger_batched import chat

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("CLICKHOUSE_TEST_URL"), reason="CLICKHOUSE_TEST_URL names no ClickHouse"),
]


@pytest.fixture
def clickhouse(settings):
    """A database of its own on the test server, dropped afterwards."""
    base = urlparse(os.environ["CLICKHOUSE_TEST_URL"])
    url = base._replace(path=f"/spendplane_test_{uuid.uuid4().hex[:10]}").geturl()
    settings.CLICKHOUSE_URL = url
    yield url
    settings.CLICKHOUSE_URL = url  # a test may have pointed it elsewhere
    analytics._execute(f"DROP DATABASE IF EXISTS {analytics._database()}", database="default")


def _entry(
    person, request_id: str, *, created_at: datetime | None = None, tokens: int = 7, model="gpt-4o-mini", feature=""
):
    return LedgerEntry(
        request_id=request_id,
        endpoint="chat.completions",
        created_at=created_at or timezone.now(),
        status_code=200,
        latency_ms=12.5,
        tenant_id=person.tenant.id,
        api_key_id=person.key.id,
        model=model,
        feature=feature,
        end_user=f"user-{tokens % 3}",
        usage=Usage(prompt_tokens=100 + tokens, completion_tokens=tokens),
        usage_source=UsageEvent.UsageSource.PROVIDER,
        rates=Rates(input=Decimal("0.15"), output=Decimal("0.6"), cached_input=0, cache_write=0, source="test"),
    )


def _ledger_cost(prefix: str) -> Decimal:
    # Summed here: SQLite sums decimal columns as floats.
    return sum(UsageEvent.objects.filter(request_id__startswith=prefix).values_list("cost_usd", flat=True))


def test_rows_written_with_the_sink_on_reach_clickhouse_once_each(alice, clickhouse):
    assert usage_record_many([_entry(alice, f"ch-{i}", tokens=i) for i in range(50)]) == 50
    assert usage_record(entry=_entry(alice, "ch-single"))
    assert AnalyticsOutbox.objects.count() == 51
    result = analytics_ship()
    assert (result.shipped, result.waiting) == (51, 0)
    assert analytics_count(request_id_prefix="ch-") == (51, _ledger_cost("ch-"))
    assert analytics_ship().shipped == 0
    assert analytics_count(request_id_prefix="ch-")[0] == 51


def test_a_batch_clickhouse_took_but_the_outbox_kept_counts_once(alice, clickhouse, monkeypatch):
    usage_record_many([_entry(alice, f"twice-{i}", tokens=i) for i in range(20)])
    real_insert = analytics._insert

    def insert_then_lose_the_delete(rows, batch):
        real_insert(rows, batch)
        raise RuntimeError("connection lost before the outbox delete")

    monkeypatch.setattr(analytics, "_insert", insert_then_lose_the_delete)
    with pytest.raises(RuntimeError):
        analytics_ship()
    assert AnalyticsOutbox.objects.exclude(batch="").count() == 20  # named, outcome unknown
    monkeypatch.setattr(analytics, "_insert", real_insert)
    result = analytics_ship()  # finds the shipment in ClickHouse: nothing is sent again
    assert (result.shipped, result.waiting) == (0, 0)
    assert analytics_count(request_id_prefix="twice-") == (20, _ledger_cost("twice-"))


def test_a_batch_clickhouse_never_took_is_sent_again(alice, clickhouse, monkeypatch):
    usage_record_many([_entry(alice, f"lost-{i}", tokens=i) for i in range(12)])
    real_insert = analytics._insert

    def fail(rows, batch):
        raise AnalyticsUnavailable("ClickHouse: connection reset")

    monkeypatch.setattr(analytics, "_insert", fail)
    with pytest.raises(AnalyticsUnavailable):
        analytics_ship()
    monkeypatch.setattr(analytics, "_insert", real_insert)
    assert analytics_ship().shipped == 12
    assert analytics_count(request_id_prefix="lost-") == (12, _ledger_cost("lost-"))


def test_a_clickhouse_outage_loses_nothing_and_never_stops_the_ledger(alice, clickhouse, settings):
    settings.CLICKHOUSE_URL = "clickhouse://default:@127.0.0.1:1/nowhere"
    assert usage_record_many([_entry(alice, f"outage-{i}") for i in range(30)]) == 30
    with pytest.raises(AnalyticsUnavailable):
        analytics_ship()
    assert AnalyticsOutbox.objects.count() == 30
    with pytest.raises(CommandError, match="stay in the outbox"):
        call_command("ship_analytics")
    settings.CLICKHOUSE_URL = clickhouse
    assert analytics_ship().shipped == 30
    assert AnalyticsOutbox.objects.count() == 0
    assert analytics_count(request_id_prefix="outage-") == (30, _ledger_cost("outage-"))


def test_concurrent_proxied_requests_reach_clickhouse_with_the_ledgers_cost(live_server, alice, clickhouse):
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda i: chat(live_server.url, alice.raw_key, f"question {i}"), range(36)))
    assert [r.status_code for r in responses] == [200] * 36
    if gateway._ledger_writer is not None:
        assert gateway._ledger_writer.flush(timeout=10)
    request_ids = {r.headers["x-request-id"] for r in responses}
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == request_ids
    assert AnalyticsOutbox.objects.count() == 36
    analytics_ship()
    ledger_cost = sum(UsageEvent.objects.values_list("cost_usd", flat=True))
    assert analytics_count(request_id_prefix="req_") == (36, ledger_cost) and ledger_cost > 0


def test_backfill_sends_rows_from_before_the_sink_and_they_count_once(alice, clickhouse, settings):
    settings.CLICKHOUSE_URL = ""
    usage_record_many([_entry(alice, f"before-{i}") for i in range(15)])
    assert not AnalyticsOutbox.objects.exists()
    settings.CLICKHOUSE_URL = clickhouse
    usage_record_many([_entry(alice, f"after-{i}") for i in range(5)])
    assert analytics_backfill(chunk=7) == 15  # not the 5 the outbox will send
    assert analytics_ship().shipped == 5
    assert analytics_backfill() == 0
    assert analytics_count(request_id_prefix="before-") == (15, _ledger_cost("before-"))
    assert analytics_count(request_id_prefix="after-") == (5, _ledger_cost("after-"))


def test_sums_read_from_clickhouse_equal_the_databases_own(alice, world, clickhouse, settings):
    charlie = world["charlie"]
    now = timezone.now()
    days_ago = [now - timedelta(days=d, hours=1) for d in (0, 1, 2, 5)]
    entries = [
        _entry(person, f"sum-{person.name}-{i}", created_at=days_ago[i % 4], tokens=i, model=model, feature=feature)
        for person in (alice, charlie)
        for i in range(40)
        for model, feature in [(("gpt-4o-mini", "gpt-4o")[i % 2], ("chat", "search", "")[i % 3])]
    ]
    usage_record_many(entries[:50])
    analytics_ship()  # shipped: in ClickHouse
    rollup_usage(now=timezone.now() + SETTLE_LAG)  # and rolled up, on the database side, up to now
    time.sleep(0.01)
    usage_record_many(entries[50:])  # in the outbox and the ledger tail after the watermark only
    assert AnalyticsOutbox.objects.count() == 30

    start = (now - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    windows = [Window(start, now + timedelta(days=1)), Window(start, now + timedelta(days=1), [charlie.tenant.id])]
    shapes = [
        {"windows": windows[:1]},
        {"windows": windows[:1], "granularity": UsageRollup.Granularity.DAY, "group_by": ("model", "feature")},
        {"windows": windows[:1], "by_day": True},
        {"windows": windows[1:], "granularity": UsageRollup.Granularity.DAY, "group_by": ("end_user",), "by_day": True},
    ]

    def key(row):
        return tuple(sorted((k, str(v)) for k, v in row.items()))

    settings.SPENDPLANE_ANALYTICS_READS = False
    from_database = [sorted(live_sums(**shape), key=key) for shape in shapes]
    margins_database = margins_between(start.date(), now.date())
    settings.SPENDPLANE_ANALYTICS_READS = True
    from_clickhouse = [sorted(live_sums(**shape), key=key) for shape in shapes]
    assert from_clickhouse == from_database
    assert sum(r["requests"] for r in from_clickhouse[0]) == 80
    assert margins_between(start.date(), now.date()) == margins_database


def test_a_long_outbox_is_left_out_of_clickhouses_sums_exactly(alice, clickhouse, settings):
    usage_record_many([_entry(alice, f"shipped-{i}") for i in range(10)])
    analytics_ship()
    # 7,000 rows waiting: their ids alone pass ClickHouse's default 256 KiB query size.
    for start in range(0, 7000, 1000):
        usage_record_many([_entry(alice, f"waiting-{i}", tokens=i % 50) for i in range(start, start + 1000)])
    low = timezone.now() - timedelta(days=1)
    called = []
    real = analytics._execute

    def spy(sql, *args, **kwargs):
        called.append(sql)
        return real(sql, *args, **kwargs)

    settings.SPENDPLANE_ANALYTICS_READS = True
    (row,) = live_sums([Window(low, low + timedelta(days=2))])
    assert row["requests"] == 7010 and row["cost_usd"] == sum(UsageEvent.objects.values_list("cost_usd", flat=True))
    analytics._execute = spy
    try:
        live_sums([Window(low, low + timedelta(days=2))])
    finally:
        analytics._execute = real
    assert any("NOT IN" in sql for sql in called), "the sums came from ClickHouse, not the fallback"


def test_reads_fall_back_to_the_database_when_clickhouse_is_down(alice, clickhouse, settings):
    usage_record_many([_entry(alice, f"down-{i}") for i in range(5)])
    settings.SPENDPLANE_ANALYTICS_READS = True
    settings.CLICKHOUSE_URL = "clickhouse://default:@127.0.0.1:1/nowhere"
    start = timezone.now() - timedelta(days=1)
    rows = live_sums([Window(start, start + timedelta(days=2))])
    assert rows[0]["requests"] == 5 and rows[0]["cost_usd"] == _ledger_cost("down-")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL partitions the ledger")
def test_retention_keeps_a_month_whose_rows_still_wait_for_clickhouse(alice, clickhouse):
    from metering.partitions import ledger_month_unfinished, ledger_partitions_ensure

    old = datetime(2024, 3, 10, tzinfo=UTC)
    usage_record_many([_entry(alice, "waiting-old", created_at=old)])
    ledger_partitions_ensure()
    assert "ClickHouse" in ledger_month_unfinished(old.date().replace(day=1), now=timezone.now())


def test_the_command_refuses_without_a_sink(settings):
    settings.CLICKHOUSE_URL = ""
    with pytest.raises(CommandError, match="CLICKHOUSE_URL"):
        call_command("ship_analytics")


def test_the_dashboards_read_clickhouse_and_say_so(alice, clickhouse, settings, client):
    from django.contrib.auth.models import User

    from tenants.roles import roles_setup

    user = User.objects.create_user("fin", is_staff=True)
    user.groups.add(roles_setup()["finance"])
    client.force_login(user)
    usage_record_many([_entry(alice, f"dash-{i}", tokens=i) for i in range(12)])
    analytics_ship()
    usage_record_many([_entry(alice, "dash-late", tokens=99)])  # still in the outbox
    settings.SPENDPLANE_DASHBOARD_CACHE_SECONDS = 0
    off = client.get("/dashboard/margins.csv").content
    settings.SPENDPLANE_ANALYTICS_READS = True
    page = client.get("/dashboard/")
    assert page.status_code == 200 and b"Usage summed in ClickHouse" in page.content
    on = client.get("/dashboard/margins.csv").content
    # Usage figures, not the projections (those move with the clock between the two reads).
    assert _usage_columns(on) == _usage_columns(off)
    costs = {row["tenant"]: Decimal(row["cost_usd"]) for row in _usage_columns(off)}
    assert costs[str(alice.tenant.id)] == _ledger_cost("dash-") > 0


def _usage_columns(content: bytes) -> list[dict]:
    import csv

    wanted = ("tenant", "revenue_usd", "cost_usd", "margin_usd", "requests")
    return [{k: row[k] for k in wanted} for row in csv.DictReader(content.decode().splitlines())]
