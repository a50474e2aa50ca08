"""Margins are live: every figure includes every ledger row recorded up to the moment it is asked,
rolled up or not, and counts each row once while rollups run beside the traffic."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from metering import rollups
from metering.live_usage import Window, live_sums
from metering.margins import margins_between, to_date
from metering.models import MarginReport, RollupState, UsageEvent
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)


def send(url: str, key: str, text: str, *, model: str = "gpt-4o-mini", stream: bool = False) -> requests.Response:
    return requests.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}", "X-Spendplane-Feature": f"feature-{len(text) % 3}"},
        timeout=20,
    )


def ledger_cost(tenant_id: int) -> Decimal:
    """The ledger's own sum (SQLite sums decimals in floating point: back to the ledger's 9 places)."""
    total = UsageEvent.objects.filter(tenant_id=tenant_id).aggregate(c=Sum("cost_usd"))["c"] or Decimal("0")
    return total.quantize(Decimal("0.000000001"))


def this_month() -> str:
    return timezone.now().strftime("%Y-%m")


def margins_api(url: str) -> dict[int, dict]:
    response = requests.get(
        f"{url}/api/v1/margins/",
        params={"period": this_month(), "by": "model,feature"},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return {row["tenant"]: row for row in response.json()["results"]}


def test_the_margins_api_equals_the_ledger_right_after_traffic(live_server, world):
    alice, charlie = world["alice"], world["charlie"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: send(live_server.url, (alice, charlie)[i % 2].raw_key, f"question {i}", stream=i % 5 == 0),
                range(50),
            )
        )
    assert [a.status_code for a in answers] == [200] * 50
    for a in answers:
        a.content  # noqa: B018 (a stream is recorded once it is read to its end)
    deadline = time.monotonic() + 5
    while UsageEvent.objects.count() < 50 and time.monotonic() < deadline:
        time.sleep(0.02)

    live = margins_api(live_server.url)
    for person in (alice, charlie):
        row = live[person.tenant.pk]
        assert Decimal(row["cost_usd"]) == ledger_cost(person.tenant.pk) > 0
        assert row["requests"] == UsageEvent.objects.filter(tenant=person.tenant).count() == 25
        assert sum(Decimal(m["cost_usd"]) for m in row["by_model"]) == Decimal(row["cost_usd"])
        assert sum(Decimal(f["cost_usd"]) for f in row["by_feature"]) == Decimal(row["cost_usd"])

    # The jobs change nothing: a rollup moves rows from the tail into rollups, the sums stay.
    rollups.rollup_usage(now=timezone.now() + rollups.SETTLE_LAG + timedelta(seconds=1))
    assert not UsageEvent.objects.filter(recorded_at__gt=RollupState.objects.get().recorded_through).exists()
    call_command("margin_report", "--period", this_month())
    rolled = margins_api(live_server.url)
    assert {t: r["cost_usd"] for t, r in rolled.items()} == {t: r["cost_usd"] for t, r in live.items()}
    report = MarginReport.objects.get(tenant=alice.tenant, period="month")
    assert report.cost_usd == ledger_cost(alice.tenant.pk)


def test_half_rolled_up_and_half_in_the_tail_counts_every_row_once(world):
    alice = world["alice"]
    now = timezone.now()
    for minutes in (50, 40, 30, 20, 10, 0):
        UsageEvent.objects.create(
            request_id=f"req_{minutes}",
            tenant=alice.tenant,
            endpoint="chat.completions",
            model="gpt-4o-mini",
            status_code=200,
            latency_ms=1,
            cost_usd=Decimal("0.000000123") * (minutes + 1),
            created_at=now - timedelta(minutes=minutes),
            recorded_at=now - timedelta(minutes=minutes),
        )
    rollups.rollup_usage(now=now - timedelta(minutes=25) + rollups.SETTLE_LAG)  # the first three rows
    assert RollupState.objects.get().recorded_through == now - timedelta(minutes=25)

    start, end = to_date(now.date().replace(day=1), now.date(), now.date())
    (margin,) = margins_between(start, end, tenant_ids=[alice.tenant.pk], breakdown=True)
    assert margin.cost_usd == ledger_cost(alice.tenant.pk) == Decimal("0.000000123") * (51 + 41 + 31 + 21 + 11 + 1)
    assert margin.requests == 6
    assert margin.by_model == [{"model": "gpt-4o-mini", "requests": 6, "tokens": 0, "cost_usd": margin.cost_usd}]
    by_day = live_sums([Window(now - timedelta(days=2), now + timedelta(days=1))], by_day=True)
    assert sum(r["cost_usd"] for r in by_day) == margin.cost_usd


def test_a_row_that_commits_after_the_watermark_passed_it_is_counted_by_the_next_run(world):
    alice = world["alice"]
    now = timezone.now()

    def row(request_id: str, recorded_at, cost: str) -> None:
        UsageEvent.objects.create(
            request_id=request_id,
            tenant=alice.tenant,
            endpoint="chat.completions",
            model="gpt-4o-mini",
            status_code=200,
            latency_ms=1,
            cost_usd=Decimal(cost),
            created_at=recorded_at - timedelta(seconds=5),
            recorded_at=recorded_at,
        )

    row("req_on_time", now - timedelta(minutes=3), "0.000001000")
    rollups.rollup_usage(now=now)  # the watermark is now - SETTLE_LAG
    # A row stamped two minutes ago that only commits now: below the watermark, in no rollup.
    row("req_late", now - timedelta(minutes=2), "0.000000500")
    start, end = to_date(now.date().replace(day=1), now.date(), now.date())
    rollups.rollup_usage(now=now + timedelta(minutes=1))
    (margin,) = margins_between(start, end, tenant_ids=[alice.tenant.pk])
    assert margin.cost_usd == ledger_cost(alice.tenant.pk) == Decimal("0.000001500")
    assert margin.requests == 2
    assert rollups.rollup_mismatches("hour") == [] and rollups.rollup_mismatches("day") == []


def test_live_margins_never_count_a_row_twice_while_rollups_run_beside_traffic(live_server, world, monkeypatch):
    """Traffic, a rollup job every few hundred milliseconds and margin reads all at once: each
    read lies between the ledger's sum just before it and just after it, and once the traffic
    stops the figure equals the ledger exactly."""
    # Rollups take rows older than this; a row must commit within it (30 s in production). At 2 s a
    # loaded CI machine on SQLite (one writer at a time) once committed a row later than that: the
    # rollup had moved past it, so no read could see it. 4 s, over 12 s of traffic, still rolls
    # rows up mid-traffic (asserted below).
    monkeypatch.setattr(rollups, "SETTLE_LAG", timedelta(seconds=4))
    alice = world["alice"]
    stop = threading.Event()
    failures: list[str] = []

    def traffic(worker: int) -> None:
        i = 0
        while not stop.is_set():
            response = send(live_server.url, alice.raw_key, f"worker {worker} question {i}", stream=i % 4 == 0)
            response.content  # noqa: B018
            i += 1

    def roll() -> None:
        try:
            while not stop.is_set():
                try:
                    rollups.rollup_usage()
                except Exception as exc:  # reported, not swallowed: the assertion below fails on it
                    failures.append(repr(exc))
                time.sleep(0.3)
        finally:
            connection.close()

    start, end = to_date(timezone.now().date().replace(day=1), timezone.now().date(), timezone.now().date())
    workers = [threading.Thread(target=traffic, args=(w,)) for w in range(4)] + [threading.Thread(target=roll)]
    for thread in workers:
        thread.start()
    reads = 0
    try:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            before = ledger_cost(alice.tenant.pk)
            (margin,) = margins_between(start, end, tenant_ids=[alice.tenant.pk])
            after = ledger_cost(alice.tenant.pk)
            if not before <= margin.cost_usd <= after:
                failures.append(f"read {margin.cost_usd} outside [{before}, {after}]")
            reads += 1
    finally:
        stop.set()
        for thread in workers:
            thread.join(timeout=30)
    time.sleep(0.3)  # the last streams' rows
    assert not failures
    assert reads > 5
    rows = UsageEvent.objects.filter(tenant=alice.tenant).count()
    rolled_through = RollupState.objects.get().recorded_through
    assert UsageEvent.objects.filter(recorded_at__lte=rolled_through).exists(), "some rows were rolled up"
    (margin,) = margins_between(start, end, tenant_ids=[alice.tenant.pk])
    assert margin.cost_usd == ledger_cost(alice.tenant.pk) > 0
    assert margin.requests == rows > 20
