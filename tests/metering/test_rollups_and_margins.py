"""Rollups equal the ledger exactly; margins follow from them; reruns and late rows stay exact."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from metering import rollups
from metering.margins import daily_revenue, margins_between
from metering.models import MarginReport, UsageEvent, UsageRollup
from metering.pricing import Rates, Usage
from metering.services import LedgerEntry, usage_record
from tenants.models import Credit, Plan, Tenant
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.django_db

RATES = Rates(Decimal("0.15"), Decimal("0.60"), Decimal("0.075"), Decimal("0.15"), "test")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def record(
    tenant,
    created_at,
    *,
    request_id,
    prompt=1000,
    completion=100,
    model="gpt-4o-mini",
    feature="chat",
    end_user="u1",
    status=200,
    recorded_at=None,
    rates=RATES,
):
    entry = LedgerEntry(
        request_id=request_id,
        endpoint="chat.completions",
        created_at=created_at,
        status_code=status,
        latency_ms=10,
        tenant_id=tenant.pk,
        model=model,
        feature=feature,
        end_user=end_user,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
        usage_source="provider",
        rates=rates,
    )
    usage_record(entry=entry)
    UsageEvent.objects.filter(request_id=request_id).update(
        recorded_at=recorded_at or created_at + timedelta(seconds=2)
    )


@pytest.fixture
def tenants(db):
    plan = Plan.objects.create(name="Scale", monthly_price_usd=Decimal("300"))
    created = datetime(2026, 1, 1, tzinfo=UTC)
    result = []
    for i, tz in enumerate(["UTC", "America/New_York", "Asia/Tokyo", "Europe/Paris"]):
        tenant = Tenant.objects.create(name=f"T{i}", external_id=f"t{i}", plan=plan, timezone=tz)
        Tenant.objects.filter(pk=tenant.pk).update(created_at=created)
        tenant.refresh_from_db()
        result.append(tenant)
    return result


def random_ledger(tenants, count=400, seed=3):
    rng = random.Random(seed)
    start = datetime(2026, 10, 25, tzinfo=UTC)
    for i in range(count):
        created = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 33))
        record(
            rng.choice(tenants),
            created,
            request_id=f"r{i}",
            prompt=rng.randrange(1, 5000),
            completion=rng.randrange(0, 900),
            model=rng.choice(["gpt-4o-mini", "gpt-4o", "claude-x"]),
            feature=rng.choice(["chat", "search", ""]),
            end_user=rng.choice(["a", "b", "c", ""]),
            status=rng.choice([200, 200, 200, 502]),
            rates=None if rng.random() < 0.05 else RATES,
        )


def ledger_total(**filters) -> tuple[Decimal, int]:
    rows = UsageEvent.objects.filter(tenant__isnull=False, **filters)
    return sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0)), rows.count()


def rollup_total(granularity, **filters) -> tuple[Decimal, int]:
    rows = UsageRollup.objects.filter(granularity=granularity, **filters)
    return sum((r.cost_usd for r in rows), Decimal(0)), sum(r.requests for r in rows)


def test_rollups_equal_the_ledger_to_the_nanodollar_across_tenants_and_days(tenants):
    random_ledger(tenants)
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    assert rollup_total("hour") == ledger_total() == rollup_total("day") == rollup_total("tday")
    for tenant in tenants:
        assert rollup_total("day", tenant=tenant) == ledger_total(tenant=tenant) == rollup_total("tday", tenant=tenant)
    assert UsageRollup.objects.filter(granularity="tday", model="", feature="", end_user="").count() == (
        UsageRollup.objects.filter(granularity="tday").count()
    )
    assert (
        rollups.rollup_mismatches("hour") == rollups.rollup_mismatches("day") == rollups.rollup_mismatches("tday") == []
    )
    call_command("check_rollups")


def all_rollups() -> list[tuple]:
    columns = (
        "granularity",
        "bucket_start",
        "tenant_id",
        "model",
        "feature",
        "end_user",
        "requests",
        "cost_usd",
        "prompt_tokens",
        "completion_tokens",
    )
    return sorted(UsageRollup.objects.values_list(*columns))


def test_a_rerun_changes_nothing(tenants):
    random_ledger(tenants, count=150)
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    before = all_rollups()
    rollups.rollup_usage(now=NOW + timedelta(days=10), full=True)
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    assert before == all_rollups()
    assert before


def test_a_late_row_updates_its_own_window(tenants):
    tenant = tenants[0]
    record(tenant, datetime(2026, 11, 20, 9, 15, tzinfo=UTC), request_id="early")
    rollups.rollup_usage(now=NOW)
    # a long stream that started on the 20th is only written now
    record(tenant, datetime(2026, 11, 20, 9, 40, tzinfo=UTC), request_id="late", recorded_at=NOW + timedelta(minutes=5))
    rollups.rollup_usage(now=NOW + timedelta(minutes=10))
    hour = UsageRollup.objects.get(granularity="hour", bucket_start=datetime(2026, 11, 20, 9, tzinfo=UTC))
    day = UsageRollup.objects.get(granularity="day", bucket_start=datetime(2026, 11, 20, tzinfo=UTC))
    assert hour.requests == day.requests == 2
    assert hour.cost_usd == ledger_total()[0]


def test_a_crash_half_way_leaves_totals_exact_after_the_rerun(tenants):
    random_ledger(tenants, count=200)
    real = rollups.recompute_hours
    calls = {"n": 0}

    def crash_on_third(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return real(*args)

    with mock.patch.object(rollups, "recompute_hours", crash_on_third), pytest.raises(RuntimeError):
        rollups.rollup_usage(now=NOW + timedelta(days=10))
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    assert rollup_total("hour") == ledger_total() == rollup_total("day")


def test_check_rollups_fails_when_a_rollup_is_wrong(tenants):
    random_ledger(tenants, count=50)
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    UsageRollup.objects.filter(pk=UsageRollup.objects.filter(granularity="hour").first().pk).update(requests=999)
    with pytest.raises(CommandError):
        call_command("check_rollups")


def test_revenue_is_the_monthly_price_prorated_by_day_less_credits(tenants):
    tenant = tenants[0]
    assert daily_revenue(tenant, date(2026, 11, 5)) == Decimal("10")  # 300 / 30
    assert daily_revenue(tenant, date(2026, 2, 5)) == Decimal("10.714285714")
    february = margins_between(date(2026, 2, 1), date(2026, 2, 28), tenant_ids=[tenant.pk])[0]
    assert february.revenue_usd == Decimal("300")
    half = margins_between(date(2026, 2, 15), date(2026, 3, 15), tenant_ids=[tenant.pk])[0]
    assert half.revenue_usd == Decimal("150") + (Decimal("300") * 15 / 31).quantize(Decimal("1e-9"))
    Credit.objects.create(tenant=tenant, amount_usd=Decimal("25"), day=date(2026, 11, 3))
    margin = margins_between(date(2026, 11, 1), date(2026, 11, 30), tenant_ids=[tenant.pk])[0]
    assert margin.revenue_usd == Decimal("275")


def test_margins_by_model_and_feature_add_up(tenants):
    random_ledger(tenants, count=300)
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    for m in margins_between(date(2026, 11, 1), date(2026, 11, 30), breakdown=True):
        in_month = {
            "tenant_id": m.tenant_id,
            "created_at__gte": datetime(2026, 11, 1, tzinfo=UTC),
            "created_at__lt": datetime(2026, 12, 1, tzinfo=UTC),
        }
        assert m.cost_usd == ledger_total(**in_month)[0]
        assert sum(r["cost_usd"] for r in m.by_model) == m.cost_usd == sum(r["cost_usd"] for r in m.by_feature)
        assert m.margin_usd == Decimal("300") - m.cost_usd
        assert m.margin_pct == ((Decimal("300") - m.cost_usd) / 300 * 100).quantize(Decimal("0.01"))


def test_the_margins_api_and_its_csv(tenants):
    random_ledger(tenants, count=100)
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    body = api.get("/api/v1/margins/", {"period": "2026-11", "by": "model"}).json()
    row = body["results"][0]
    assert set(row) >= {
        "tenant",
        "revenue_usd",
        "cost_usd",
        "margin_usd",
        "margin_pct",
        "requests",
        "tokens",
        "by_model",
    }
    assert Decimal(row["revenue_usd"]) - Decimal(row["cost_usd"]) == Decimal(row["margin_usd"])
    ranged = api.get("/api/v1/margins/", {"from": "2026-11-01", "to": "2026-11-30"}).json()
    assert [r["cost_usd"] for r in ranged["results"]] == [r["cost_usd"] for r in body["results"]]
    csv_text = api.get("/api/v1/margins/", {"period": "2026-11", "format": "csv"}).content.decode()
    assert csv_text.splitlines()[0].startswith("tenant,tenant_name,from,to,revenue_usd,cost_usd,margin_usd")
    assert len(csv_text.splitlines()) == len(tenants) + 1
    assert api.get("/api/v1/margins/", {"period": "2026-13"}).status_code == 400
    assert api.get("/api/v1/margins/", {"period": "2026-11", "by": "color"}).status_code == 400


def test_the_margin_report_command_stores_reports_idempotently(tenants, capsys):
    random_ledger(tenants, count=60)
    rollups.rollup_usage(now=NOW + timedelta(days=10))
    call_command("margin_report", "--period", "2026-11")
    call_command("margin_report", "--period", "2026-11")
    assert MarginReport.objects.filter(period="month").count() == len(tenants)
    assert "T0" in capsys.readouterr().out
    call_command("margin_report", "--day", "2026-11-20")
    assert MarginReport.objects.filter(period="day", period_start=date(2026, 11, 20)).count() == len(tenants)


def test_rollup_usage_prints_progress(tenants, capsys):
    random_ledger(tenants, count=40)
    call_command("rollup_usage", "--full")
    out = capsys.readouterr().out
    assert "hours 2026-" in out and "Rolled up" in out


def test_margins_can_follow_each_tenants_own_days(tenants):
    tokyo = tenants[2]  # Asia/Tokyo, UTC+9
    new_york = tenants[1]  # America/New_York, still UTC-4 early on 1 Nov 2026
    # 20:00 UTC on 31 Oct is already 1 Nov in Tokyo; 03:00 UTC on 1 Nov is still 31 Oct in New York
    record(tokyo, datetime(2026, 10, 31, 20, 0, tzinfo=UTC), request_id="tokyo")
    record(new_york, datetime(2026, 11, 1, 3, 0, tzinfo=UTC), request_id="ny")
    rollups.rollup_usage(now=datetime(2026, 11, 2, tzinfo=UTC))
    cost = RATES.cost_for(Usage(prompt_tokens=1000, completion_tokens=100))

    def october(local_time):
        return {
            m.tenant_id: m.cost_usd
            for m in margins_between(date(2026, 10, 1), date(2026, 10, 31), local_time=local_time)
        }

    utc, local = october(False), october(True)
    assert (utc[tokyo.pk], utc[new_york.pk]) == (cost, Decimal(0))
    assert (local[tokyo.pk], local[new_york.pk]) == (Decimal(0), cost)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    rows = api.get("/api/v1/margins/", {"period": "2026-10", "timezone": "tenant"}).json()["results"]
    assert {r["tenant"]: Decimal(r["cost_usd"]) for r in rows}[new_york.pk] == cost


def test_the_margin_job_finishes_last_months_report_after_midnight(tenants, monkeypatch):
    from django.utils import timezone

    from metering.tasks import margin_reports_task

    record(tenants[0], datetime(2026, 11, 30, 23, 59, 50, tzinfo=UTC), request_id="late-november")
    after_midnight = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    rollups.rollup_usage(now=after_midnight)
    monkeypatch.setattr(timezone, "now", lambda: after_midnight)
    margin_reports_task()
    november = MarginReport.objects.get(tenant=tenants[0], period="month", period_start=date(2026, 11, 1))
    last_day = MarginReport.objects.get(tenant=tenants[0], period="day", period_start=date(2026, 11, 30))
    cost = UsageEvent.objects.get(request_id="late-november").cost_usd
    assert november.cost_usd == last_day.cost_usd == cost > 0
