"""Budgets and rate limits through a live gateway (one process; the multi-process proofs are in
tests/e2e/test_enforcement_processes.py)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
import requests
from django.utils import timezone

from guard import middleware as guard_middleware
from metering import budgets, limits
from metering.models import BudgetCounter, BudgetReservation, UsageEvent
from tenants.models import Budget, RateLimit
from tests.conftest import ledger_row, room_in_this_minute

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]


def chat(client, user=None, feature=None, content="hi", max_tokens=8, **kw):
    headers = {}
    if user:
        headers["X-Spendplane-User"] = user
    if feature:
        headers["X-Spendplane-Feature"] = feature
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": content}],
        max_tokens=max_tokens,
        extra_headers=headers,
        **kw,
    )


def wait_for_reservation(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not BudgetReservation.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def one_request_cost(client) -> Decimal:
    raw = chat(client, user="probe")
    return ledger_row(raw.headers["x-request-id"]).cost_usd


def test_an_end_users_budget_blocks_that_user_and_no_other(openai_client, alice):
    cost = one_request_cost(openai_client)
    Budget.objects.create(tenant=alice.tenant, scope="end_user", subject="*", period="day", limit_usd=cost * 2)
    chat(openai_client, user="heavy")
    chat(openai_client, user="heavy")
    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client, user="heavy")
    assert caught.value.status_code == 402
    assert caught.value.body["type"] == "budget_exceeded"
    assert caught.value.body["code"] == "end_user_budget_exceeded"
    assert "heavy" in caught.value.body["message"]
    chat(openai_client, user="light")  # another user is not affected
    spent = UsageEvent.objects.filter(end_user="heavy", status_code=200).count()
    assert spent == 2


def test_the_tenant_budget_blocks_with_a_402_naming_the_tenant_scope(openai_client, alice):
    cost = one_request_cost(openai_client)
    alice.tenant.monthly_budget_usd = cost * 3
    alice.tenant.save()
    raw = chat(openai_client)
    assert Decimal(raw.headers["x-spendplane-budget-remaining"]) == cost
    chat(openai_client)
    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client)
    assert (caught.value.status_code, caught.value.body["code"]) == (402, "tenant_budget_exceeded")
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert (
        counter.spent()
        == cost * 3
        == budgets.ledger_spend(alice.tenant.pk, "tenant", "", counter.period_start, counter.period_end)
    )


def test_feature_and_key_budgets_apply_to_their_own_scope(openai_client, alice):
    cost = one_request_cost(openai_client)
    Budget.objects.create(tenant=alice.tenant, scope="feature", subject="search", period="month", limit_usd=cost)
    chat(openai_client, feature="search")
    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client, feature="search")
    assert caught.value.body["code"] == "feature_budget_exceeded"
    chat(openai_client, feature="chat")
    Budget.objects.create(tenant=alice.tenant, scope="key", subject=str(alice.key.pk), period="day", limit_usd=cost)
    with pytest.raises(openai.APIStatusError) as caught:
        chat(openai_client, feature="chat")
    assert caught.value.body["code"] == "key_budget_exceeded"


def test_a_soft_budget_never_blocks(openai_client, alice):
    Budget.objects.create(tenant=alice.tenant, scope="tenant", period="day", limit_usd=Decimal("0.000001"), hard=False)
    for _ in range(3):
        chat(openai_client)
    assert UsageEvent.objects.filter(status_code=200).count() == 3


def test_a_raised_cap_holds_until_its_date(openai_client, alice):
    cost = one_request_cost(openai_client)
    budget = Budget.objects.create(tenant=alice.tenant, scope="tenant", period="day", limit_usd=cost)
    with pytest.raises(openai.APIStatusError):
        chat(openai_client)
    budget.raised_limit_usd = cost * 10
    budget.raised_until = timezone.now() + timedelta(hours=1)
    budget.save()
    chat(openai_client)
    budget.raised_until = timezone.now() - timedelta(seconds=1)
    budget.save()
    with pytest.raises(openai.APIStatusError):
        chat(openai_client)


def test_an_upstream_5xx_releases_the_reservation_and_charges_nothing(openai_client, alice):
    with pytest.raises(openai.InternalServerError):
        chat(openai_client, content="MOCK_FAULT=500")
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert counter.spent() == 0
    assert not BudgetReservation.objects.exists()


def start_slow_request(live_server, person, max_tokens: int = 8) -> threading.Thread:
    """A request the mock answers after 1.5 s, sent in the background; returns once it is admitted."""
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "MOCK_LATENCY_MS=1500"}],
    }
    thread = threading.Thread(
        target=requests.post,
        args=(live_server.url + "/v1/chat/completions",),
        kwargs={"json": body, "headers": {"Authorization": f"Bearer {person.raw_key}"}},
    )
    thread.start()
    wait_for_reservation()
    return thread


def test_the_reservation_is_held_while_the_request_is_in_flight(live_server, alice):
    thread = start_slow_request(live_server, alice)
    held = BudgetReservation.objects.get()
    assert held.amount_usd > 0
    thread.join()
    assert not BudgetReservation.objects.exists()
    assert BudgetCounter.objects.get().spent() == UsageEvent.objects.get().cost_usd <= held.amount_usd


def test_requests_per_minute_are_limited_with_retry_after(openai_client, alice):
    room_in_this_minute(10)
    RateLimit.objects.create(tenant=alice.tenant, scope="end_user", subject="*", rpm_limit=2)
    first = chat(openai_client, user="u1")
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    chat(openai_client, user="u1")
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_client, user="u1")
    assert caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    chat(openai_client, user="u2")


def test_a_refused_request_does_not_use_up_the_requests_window(openai_client, alice):
    """Every limit is checked before any is counted, so a request refused for tokens leaves the
    requests-per-minute window as it was."""
    room_in_this_minute(10)
    RateLimit.objects.create(tenant=alice.tenant, scope="end_user", subject="*", rpm_limit=2, tpm_limit=300)
    for _ in range(3):
        with pytest.raises(openai.RateLimitError):
            chat(openai_client, user="u1", max_tokens=1000)  # over the token window on its own
    chat(openai_client, user="u1", content="one")
    second = chat(openai_client, user="u1", content="two")
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError):
        chat(openai_client, user="u1", content="three")


def test_a_request_over_a_limit_and_its_budget_is_told_429_and_holds_nothing(openai_client, alice):
    """The limits' answer arrives while the budget is reserved; it still takes precedence, and the
    reservation of a refused request goes with its ledger row."""
    limits.reset_counters()
    room_in_this_minute(10)
    RateLimit.objects.create(tenant=alice.tenant, scope="end_user", subject="*", rpm_limit=1)
    Budget.objects.create(tenant=alice.tenant, scope="tenant", period="day", limit_usd=Decimal("0.000000001"))
    with pytest.raises(openai.APIStatusError) as over_budget:
        chat(openai_client, user="u1")
    assert over_budget.value.status_code == 402
    with pytest.raises(openai.RateLimitError) as over_both:
        chat(openai_client, user="u1")
    assert over_both.value.code == "rate_limit_exceeded"
    assert ledger_row(over_both.value.response.headers["x-request-id"]).status_code == 429
    assert ledger_row(over_budget.value.response.headers["x-request-id"]).status_code == 402
    assert not BudgetReservation.objects.exists()


def test_once_a_limit_refuses_a_tenant_its_requests_are_checked_limit_first(openai_client, alice, monkeypatch):
    """A flood of refused requests costs neither a budget reservation nor a guard scan: after the
    first refusal the gateway waits for the limits' answer before either."""
    limits.reset_counters()
    room_in_this_minute(10)
    RateLimit.objects.create(tenant=alice.tenant, scope="end_user", subject="*", rpm_limit=1)
    Budget.objects.create(tenant=alice.tenant, scope="tenant", period="day", limit_usd=Decimal("100"))
    reserved = []
    reserve = budgets.budget_reserve
    monkeypatch.setattr(budgets, "budget_reserve", lambda **kw: reserved.append(kw["request_id"]) or reserve(**kw))
    scanned = []
    inspect = guard_middleware.inspect
    monkeypatch.setattr(guard_middleware, "inspect", lambda body, who: scanned.append(1) or inspect(body, who))
    admitted = chat(openai_client, user="u1")
    assert reserved == [admitted.headers["x-request-id"]]
    refused_ids = []
    for _ in range(3):
        with pytest.raises(openai.RateLimitError) as caught:
            chat(openai_client, user="u1")
        refused_ids.append(caught.value.response.headers["x-request-id"])
    # The first refusal was not known in advance: its reservation ran alongside, and was released.
    assert reserved == [admitted.headers["x-request-id"], refused_ids[0]]
    assert len(scanned) == 2  # the admitted request and the first refusal
    assert not limits.recently_refused(alice.tenant.pk + 1000)
    assert limits.recently_refused(alice.tenant.pk)
    assert [ledger_row(rid).status_code for rid in refused_ids] == [429, 429, 429]
    assert not BudgetReservation.objects.exists()
    spent = BudgetCounter.objects.get(scope="tenant", period="day").spent()
    assert spent == ledger_row(admitted.headers["x-request-id"]).cost_usd


def test_tokens_per_minute_are_limited(openai_client, alice):
    room_in_this_minute(10)
    alice.tenant.tpm_limit = 60
    alice.tenant.save()
    first = chat(openai_client, max_tokens=20)  # ~28 tokens counted
    assert first.headers["x-ratelimit-limit-tokens"] == "60"
    assert 0 < int(first.headers["x-ratelimit-remaining-tokens"]) < 60
    chat(openai_client, max_tokens=20)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_client, max_tokens=20)
    assert "tokens" in caught.value.message


def test_in_flight_requests_are_limited(live_server, alice, openai_client):
    alice.tenant.max_concurrency = 1
    alice.tenant.save()
    thread = start_slow_request(live_server, alice, max_tokens=4)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_client)
    assert "concurrency" in caught.value.message
    thread.join()
    chat(openai_client)  # the slot was released


def test_the_same_request_in_a_loop_is_throttled(openai_client, alice):
    plan = alice.tenant.plan
    plan.loop_max_repeats = 3
    plan.save()
    for _ in range(3):
        chat(openai_client, user="agent", content="same question")
    with pytest.raises(openai.RateLimitError) as caught:
        chat(openai_client, user="agent", content="same question")
    assert caught.value.code == "loop_detected"
    chat(openai_client, user="agent", content="a different question")


def refused_then_admitted_when_open(openai_client, settings) -> None:
    """With the limit store unreachable: 503 by default, admitted once SPENDPLANE_REDIS_FAILURE=open."""
    limits.reset_counters()
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            chat(openai_client)
        assert (caught.value.status_code, caught.value.body["code"]) == (503, "limits_unavailable")
        settings.SPENDPLANE_REDIS_FAILURE = "open"
        chat(openai_client)
    finally:
        limits.reset_counters()


def test_an_unreachable_limit_store_fails_closed_by_default(openai_client, alice, settings):
    alice.tenant.tpm_limit = 10_000
    alice.tenant.save()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    refused_then_admitted_when_open(openai_client, settings)
    assert not BudgetReservation.objects.exists()


def test_daily_periods_follow_the_tenant_time_zone():
    at = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # still the 26th in New York
    key, start, end = budgets.period_bounds("day", at, "America/New_York")
    assert key == "2026-11-26"
    assert (start, end) == (datetime(2026, 11, 26, 5, 0, tzinfo=UTC), datetime(2026, 11, 27, 5, 0, tzinfo=UTC))
    key, start, end = budgets.period_bounds("month", at, "UTC")
    assert (key, start, end) == ("2026-11", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    key, start, end = budgets.period_bounds("month", datetime(2026, 3, 15, tzinfo=UTC), "Europe/Paris")
    assert (start, end) == (datetime(2026, 2, 28, 23, 0, tzinfo=UTC), datetime(2026, 3, 31, 22, 0, tzinfo=UTC))


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_the_remembered_period_is_never_answered_outside_its_bounds(zone):
    """period_bounds keeps its last answer per period and zone; crossing a boundary either way,
    and asking again in the same period, must give what a fresh computation gives."""
    start = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    moments = [start + timedelta(minutes=37 * i) for i in range(60)]
    for at in moments + moments[::-1] + moments[::7]:
        for period in ("day", "month"):
            assert budgets.period_bounds(period, at, zone) == budgets._period_bounds(period, at, zone)


def test_a_budget_created_mid_period_counts_the_spend_already_in_the_ledger(openai_client, alice):
    cost = one_request_cost(openai_client)
    chat(openai_client)
    Budget.objects.create(tenant=alice.tenant, scope="tenant", period="day", limit_usd=cost * 3)
    chat(openai_client)
    with pytest.raises(openai.APIStatusError):
        chat(openai_client)


def test_with_redis_down_it_fails_closed_and_keeps_budgets_exact(openai_client, alice, settings):
    alice.tenant.monthly_budget_usd = Decimal("10")
    alice.tenant.save()
    dead = "redis://127.0.0.1:1/0"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead}}
    settings.REDIS_URL = dead
    refused_then_admitted_when_open(openai_client, settings)
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert counter.spent() == UsageEvent.objects.get(status_code=200).cost_usd > 0
    assert UsageEvent.objects.filter(status_code=503).count() == 1


def test_check_budget_counters_proves_counters_equal_the_ledger(openai_client, alice):
    from django.core.management import CommandError, call_command

    for _ in range(3):
        chat(openai_client)
    call_command("check_budget_counters")
    BudgetCounter.objects.update(base_usd=Decimal("123"))
    with pytest.raises(CommandError):
        call_command("check_budget_counters")
    call_command("check_budget_counters", "--fix")
    call_command("check_budget_counters")
    assert BudgetCounter.objects.get().spent() == sum(e.cost_usd for e in UsageEvent.objects.all())


def test_sweeping_deletes_only_long_expired_reservations(alice):
    counter = BudgetCounter.objects.create(
        tenant=alice.tenant,
        scope="tenant",
        period="month",
        period_key="2026-11",
        period_start=timezone.now(),
        period_end=timezone.now() + timedelta(days=30),
    )
    BudgetReservation.objects.create(
        request_id="old", counter=counter, amount_usd=1, expires_at=timezone.now() - timedelta(hours=2)
    )
    BudgetReservation.objects.create(
        request_id="live", counter=counter, amount_usd=1, expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert budgets.budget_sweep() == 1
    assert list(BudgetReservation.objects.values_list("request_id", flat=True)) == ["live"]
