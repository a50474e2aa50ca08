"""Alerts fire once per threshold and period, recover once, and are delivered signed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from metering import alerts
from metering.models import AlertEvent, BudgetCounter, UsageRollup, WebhookEndpoint
from metering.pricing import Rates, Usage
from metering.services import LedgerEntry, usage_record
from tenants.models import Budget
from tests.metering.conftest import Receiver

pytestmark = pytest.mark.django_db

RATES = Rates(Decimal("1"), Decimal("1"), Decimal("1"), Decimal("1"), "test")  # $1 per million tokens


def spend(tenant, usd: str, *, request_id: str, end_user="u1", created_at=None, error_type="", status=200):
    usage_record(
        entry=LedgerEntry(
            request_id=request_id,
            endpoint="chat.completions",
            created_at=created_at or timezone.now(),
            status_code=status,
            latency_ms=1,
            tenant_id=tenant.pk,
            end_user=end_user,
            error_type=error_type,
            usage=Usage(prompt_tokens=int(Decimal(usd) * 1_000_000)),
            usage_source="provider",
            rates=RATES,
        )
    )


def month_counter(tenant, spent: str):
    now = timezone.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return BudgetCounter.objects.create(
        tenant=tenant,
        scope="tenant",
        period="month",
        period_key=start.strftime("%Y-%m"),
        period_start=start,
        period_end=start + timedelta(days=31),
        base_usd=Decimal(spent),
    )


def kinds(events):
    return sorted((e.kind, e.state, e.data.get("threshold_pct")) for e in events)


def test_a_budget_threshold_fires_once_and_recovers_once(alice, django_capture_on_commit_callbacks):
    tenant = alice.tenant  # plan budget $50
    counter = month_counter(tenant, "41")  # 82%
    with django_capture_on_commit_callbacks(execute=True):
        first = alerts.evaluate_alerts()
    fired = [e for e in first if e.kind == "budget_threshold"]
    assert kinds(fired) == [("budget_threshold", "fired", 50), ("budget_threshold", "fired", 80)]
    assert [e for e in alerts.evaluate_alerts() if e.kind == "budget_threshold"] == []
    BudgetCounter.objects.filter(pk=counter.pk).update(base_usd=Decimal("30"))  # support reset part of it
    recovered = [e for e in alerts.evaluate_alerts() if e.kind == "budget_threshold"]
    assert kinds(recovered) == [("budget_threshold", "recovered", 80)]
    assert [e for e in alerts.evaluate_alerts() if e.kind == "budget_threshold"] == []


def test_an_end_user_default_budget_alerts_per_user(alice):
    Budget.objects.create(tenant=alice.tenant, scope="end_user", subject="*", period="day", limit_usd=Decimal("2"))
    now = timezone.now()
    BudgetCounter.objects.create(
        tenant=alice.tenant,
        scope="end_user",
        subject="loop-bot",
        period="day",
        period_key=now.strftime("%Y-%m-%d"),
        period_start=now - timedelta(hours=1),
        period_end=now + timedelta(hours=1),
        base_usd=Decimal("2.5"),
    )
    events = [e for e in alerts.evaluate_alerts() if e.kind == "budget_threshold"]
    assert {e.data["threshold_pct"] for e in events} == {50, 80, 100}
    assert all(e.data["subject"] == "loop-bot" for e in events)


def test_projected_overspend_fires_at_the_current_burn_rate(alice):
    now = timezone.now()
    start = now - timedelta(days=10)
    BudgetCounter.objects.create(
        tenant=alice.tenant,
        scope="tenant",
        period="month",
        period_key="p",
        period_start=start,
        period_end=start + timedelta(days=30),
        base_usd=Decimal("20"),  # 1/3 elapsed → $60 projected
    )
    events = [e for e in alerts.evaluate_alerts() if e.kind == "projected_overspend"]
    assert len(events) == 1 and Decimal(events[0].data["projected_usd"]) == Decimal("60.000000")


def test_a_spike_needs_to_beat_the_tenants_own_baseline_and_the_dollar_floor(alice, settings):
    settings.SPENDPLANE_SPIKE_MIN_USD = 5
    now = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    hour = now.replace(minute=0) - timedelta(hours=1)
    for i in range(1, 7 * 24 + 1):
        UsageRollup.objects.create(
            granularity="hour",
            bucket_start=hour - timedelta(hours=i),
            tenant=alice.tenant,
            requests=1,
            cost_usd=Decimal("0.50"),
        )
    small = UsageRollup.objects.create(
        granularity="hour", bucket_start=hour, tenant=alice.tenant, requests=1, cost_usd=Decimal("4.00")
    )
    assert [e for e in alerts.evaluate_alerts(now=now) if e.kind == "spend_spike"] == []  # under the floor
    UsageRollup.objects.filter(pk=small.pk).update(cost_usd=Decimal("40.00"))
    spikes = [e for e in alerts.evaluate_alerts(now=now) if e.kind == "spend_spike"]
    assert len(spikes) == 1 and spikes[0].data["cost_usd"] == "40.000000"
    later = [e for e in alerts.evaluate_alerts(now=now + timedelta(hours=1)) if e.kind == "spend_spike"]
    assert [(e.state, e.dedupe_key) for e in later] == [("recovered", spikes[0].dedupe_key)]


def test_one_end_user_taking_most_of_the_spend_is_flagged(alice):
    spend(alice.tenant, "9", request_id="a", end_user="whale")
    spend(alice.tenant, "1", request_id="b", end_user="minnow")
    events = [e for e in alerts.evaluate_alerts() if e.kind == "user_dominance"]
    assert len(events) == 1 and events[0].data["end_user"] == "whale"


def test_repeated_prompts_throttled_by_the_loop_guard_raise_an_alert(alice):
    spend(alice.tenant, "0", request_id="l1", end_user="agent", status=429, error_type="loop_detected")
    events = [e for e in alerts.evaluate_alerts() if e.kind == "repeated_prompts"]
    assert events[0].data == {"throttled": {"agent": 1}}


def test_alerts_are_delivered_signed_and_the_signature_verifies(alice, receiver, django_capture_on_commit_callbacks):
    WebhookEndpoint.objects.create(url=receiver, secret="whsec-test")
    month_counter(alice.tenant, "26")
    with django_capture_on_commit_callbacks(execute=True):
        events = alerts.evaluate_alerts()
    assert len(Receiver.received) == len(events) >= 1
    headers, body = Receiver.received[0]
    assert alerts.verify("whsec-test", body, headers["Spendplane-Signature"])
    assert not alerts.verify("wrong-secret", body, headers["Spendplane-Signature"])
    assert not alerts.verify("whsec-test", body + b" ", headers["Spendplane-Signature"])
    payload = json.loads(body)
    assert payload["kind"] == "budget_threshold" and payload["tenant_external_id"] == "tenant-a"
    event = AlertEvent.objects.get(pk=payload["id"])
    assert event.delivered_at is not None and event.delivery_attempts == 1


def test_the_documented_signature_recipe():
    import hashlib
    import hmac

    body = b'{"id":1}'
    header = alerts.sign("s3cret", body, timestamp=1_800_000_000)
    expected = hmac.new(b"s3cret", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={expected}"
    assert not alerts.verify("s3cret", body, header)  # too old
    assert alerts.verify("s3cret", body, alerts.sign("s3cret", body, int(time.time())))


def test_a_failed_delivery_raises_so_the_task_retries(alice):
    from metering.delivery import DeliveryFailed, alert_deliver

    WebhookEndpoint.objects.create(url="http://127.0.0.1:1/unreachable", secret="x")
    event = AlertEvent.objects.create(tenant=alice.tenant, kind="spend_spike", dedupe_key="k", message="m")
    with pytest.raises(DeliveryFailed):
        alert_deliver(event_id=event.pk)
    event.refresh_from_db()
    assert event.delivered_at is None and event.delivery_attempts == 1
