"""Unit economics: AI cost per active end user and per request, cost as a share of revenue, and
the period-end projection at the current burn, per tenant and per feature, live like the margins."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from rest_framework.test import APIClient

from metering import rollups
from metering.margins import margins_between
from tenants.models import Plan, Tenant
from tests.conftest import MASTER_KEY
from tests.metering.test_rollups_and_margins import record

pytestmark = pytest.mark.django_db

Q9 = Decimal("0.000000001")
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


@pytest.fixture
def tenant(db):
    plan = Plan.objects.create(name="Scale", monthly_price_usd=Decimal("300"))
    tenant = Tenant.objects.create(name="Unit", external_id="unit", plan=plan)
    Tenant.objects.filter(pk=tenant.pk).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    tenant.refresh_from_db()
    # Four requests in the first ten days: users a (twice), b and one with no user; two features.
    for i, (user, feature) in enumerate([("a", "chat"), ("a", "search"), ("b", "chat"), ("", "chat")]):
        record(tenant, datetime(2026, 11, 2 + 2 * i, 9, tzinfo=UTC), request_id=f"u{i}", end_user=user, feature=feature)
    # Half rolled up, half still only in the ledger: the figures read both.
    rollups.rollup_usage(now=datetime(2026, 11, 5, tzinfo=UTC))
    return tenant


def test_cost_per_user_per_request_and_share_of_revenue(tenant):
    margin = margins_between(*NOVEMBER, breakdown=True, users=True)[0]
    assert (margin.requests, margin.active_users) == (4, 2)  # a request without an end user has no user
    assert margin.cost_per_request == (margin.cost_usd / 4).quantize(Q9, rounding=ROUND_HALF_UP)
    assert margin.cost_per_active_user == (margin.cost_usd / 2).quantize(Q9, rounding=ROUND_HALF_UP)
    assert margin.cost_share_pct == (margin.cost_usd / 300 * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    features = {f["feature"]: f for f in margin.by_feature}
    assert (features["chat"]["requests"], features["chat"]["active_users"]) == (3, 2)
    assert (features["search"]["requests"], features["search"]["active_users"]) == (1, 1)
    assert features["chat"]["cost_per_active_user"] == (features["chat"]["cost_usd"] / 2).quantize(Q9)
    assert sum(f["cost_usd"] for f in features.values()) == margin.cost_usd


def test_the_projection_scales_the_burn_to_the_period_end(tenant):
    ten_days_in = datetime(2026, 11, 11, tzinfo=UTC)
    margin = margins_between(date(2026, 11, 1), date(2026, 11, 10), period_end=NOVEMBER[1], now=ten_days_in)[0]
    assert margin.revenue_usd == Decimal("100.000000000")  # ten days of thirty
    assert margin.projected_revenue_usd == Decimal("300.000000000")
    assert margin.projected_cost_usd == (margin.cost_usd * 3).quantize(Q9, rounding=ROUND_HALF_UP)
    assert margin.projected_margin_usd == margin.projected_revenue_usd - margin.projected_cost_usd
    closed = margins_between(*NOVEMBER)[0]
    assert closed.projected_cost_usd is None and closed.projected_margin_usd is None


def test_no_requests_or_no_users_give_no_ratio_rather_than_a_division_by_zero(db):
    plan = Plan.objects.create(name="Free", monthly_price_usd=Decimal("0"))
    Tenant.objects.create(name="Idle", external_id="idle", plan=plan)
    today = datetime.now(UTC).date()
    margin = margins_between(today, today)[0]
    assert (margin.cost_per_request, margin.cost_per_active_user, margin.cost_share_pct) == (None, None, None)


def test_the_margins_api_carries_the_unit_economics(tenant):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    row = api.get("/api/v1/margins/", {"period": "2026-11", "by": "feature"}).json()["results"][0]
    margin = margins_between(*NOVEMBER, users=True)[0]
    assert row["active_users"] == 2
    assert Decimal(row["cost_per_request_usd"]) == margin.cost_per_request
    assert Decimal(row["cost_per_active_user_usd"]) == margin.cost_per_active_user
    assert Decimal(row["cost_share_pct"]) == margin.cost_share_pct
    assert row["projected_margin_usd"] is None  # November is over
    chat = next(f for f in row["by_feature"] if f["feature"] == "chat")
    assert chat["active_users"] == 2 and Decimal(chat["cost_per_request_usd"]) > 0
    csv_text = api.get("/api/v1/margins/", {"period": "2026-11", "format": "csv"}).content.decode()
    header = csv_text.splitlines()[0].split(",")
    assert header[:7] == ["tenant", "tenant_name", "from", "to", "revenue_usd", "cost_usd", "margin_usd"]
    assert {"revenue_source", "active_users", "cost_per_active_user_usd", "projected_margin_usd"} <= set(header)


def test_a_period_in_progress_is_projected_in_the_api(tenant):
    now = datetime.now(UTC)
    record(tenant, now - timedelta(minutes=1), request_id="today", end_user="c")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    row = api.get("/api/v1/margins/", {"period": now.strftime("%Y-%m")}).json()["results"][0]
    assert Decimal(row["projected_cost_usd"]) >= Decimal(row["cost_usd"]) > 0
    assert Decimal(row["projected_revenue_usd"]) == Decimal("300")
