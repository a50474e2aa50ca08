"""Caps that must hold across server processes, under real concurrency, through restarts."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import redis
import requests
from django.conf import settings

from metering import pricing, tokens
from metering.models import BudgetCounter, BudgetReservation, UsageEvent
from metering.pricing import Usage, usd_str
from tenants.models import RateLimit
from tests.conftest import room_in_this_minute
from tests.e2e.conftest import needs_redis

pytestmark = pytest.mark.django_db(transaction=True)

MAX_TOKENS = 5


def body(content: str) -> dict:
    return {"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": content}]}


def exact_cost(content: str) -> Decimal:
    """What one such request costs: the mock's prompt count is tiktoken's, its reply MAX_TOKENS tokens,
    so the worst case the gateway reserves is also the actual cost."""
    prompt = tokens.count_chat_prompt("gpt-4o-mini", body(content)["messages"])
    rates = pricing.rates_for("gpt-4o-mini", provider_kind="openai")
    return rates.cost_for(Usage(prompt_tokens=prompt, completion_tokens=MAX_TOKENS))


def post(url: str, key: str, payload: dict, **headers) -> requests.Response:
    return requests.post(
        f"{url}/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {key}", **headers}, timeout=60
    )


def no_loop_throttle(tenant) -> None:
    """These tests send one request many times on purpose."""
    tenant.plan.loop_max_repeats = 0
    tenant.plan.save()


def fire(urls: list[str], key: str, payload: dict, count: int, **headers) -> list[int]:
    """`count` requests at once, spread over the processes; returns their status codes."""
    start = threading.Barrier(count)

    def one(i: int) -> int:
        start.wait()
        return post(urls[i % len(urls)], key, payload, **headers).status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_200_concurrent_requests_never_overspend_a_budget_across_two_processes(two_gateways, alice, capsys):
    content = "MOCK_LATENCY_MS=200 What is our refund policy?"
    cost = exact_cost(content)
    fits = 50
    no_loop_throttle(alice.tenant)
    alice.tenant.monthly_budget_usd = cost * fits
    alice.tenant.save()

    statuses = fire([g.url for g in two_gateways], alice.raw_key, body(content), 200)

    admitted, refused = statuses.count(200), statuses.count(402)
    spent = sum(e.cost_usd for e in UsageEvent.objects.filter(tenant=alice.tenant, status_code=200))
    assert admitted + refused == 200, statuses
    assert spent <= alice.tenant.monthly_budget_usd
    assert admitted >= fits - 1
    assert UsageEvent.objects.filter(tenant=alice.tenant).count() == 200
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert counter.spent() == spent
    assert not BudgetReservation.objects.exists()
    with capsys.disabled():
        print(
            f"\n  budget fits {fits}: admitted {admitted}, refused {refused}, "
            f"overshoot ${usd_str(max(spent - alice.tenant.monthly_budget_usd, Decimal(0)))}"
        )


@needs_redis
def test_a_per_minute_limit_holds_across_processes(two_gateways, alice):
    no_loop_throttle(alice.tenant)
    RateLimit.objects.create(tenant=alice.tenant, scope="key", subject=str(alice.key.pk), rpm_limit=30)
    room_in_this_minute(20)
    statuses = fire([g.url for g in two_gateways], alice.raw_key, body("hello"), 60)
    assert statuses.count(200) == 30
    assert statuses.count(429) == 30


@needs_redis
def test_flushing_redis_mid_run_does_not_reset_spend(two_gateways, alice):
    content = "How do I export my data?"
    cost = exact_cost(content)
    no_loop_throttle(alice.tenant)
    alice.tenant.monthly_budget_usd = cost * 10
    alice.tenant.save()
    urls = [g.url for g in two_gateways]
    first = [post(urls[i % 2], alice.raw_key, body(content)).status_code for i in range(6)]
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    rest = [post(urls[i % 2], alice.raw_key, body(content)).status_code for i in range(8)]
    assert first == [200] * 6
    assert rest == [200] * 4 + [402] * 4
    spent = sum(e.cost_usd for e in UsageEvent.objects.filter(tenant=alice.tenant, status_code=200))
    assert spent == cost * 10


def test_a_killed_process_does_not_strand_its_reservation(start_gateway, alice):
    content = "MOCK_LATENCY_MS=20000 a request that will never finish"
    alice.tenant.monthly_budget_usd = exact_cost(content)
    alice.tenant.save()
    doomed = start_gateway(SPENDPLANE_RESERVATION_SECONDS="3")
    survivor = start_gateway()
    threading.Thread(target=lambda: _swallow(post, doomed.url, alice.raw_key, body(content)), daemon=True).start()
    deadline = time.monotonic() + 10
    while not BudgetReservation.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert BudgetReservation.objects.exists()
    doomed.kill()

    # A cheaper request: refused while the dead request's reservation holds the whole budget...
    assert post(survivor.url, alice.raw_key, body("hi")).status_code == 402
    time.sleep(3.2)
    # ...and admitted once that reservation has expired by itself.
    assert post(survivor.url, alice.raw_key, body("hi")).status_code == 200


def _swallow(fn, *args):
    with contextlib.suppress(requests.RequestException):
        fn(*args)


@needs_redis
def test_a_cap_change_takes_effect_on_the_next_request_in_every_process(two_gateways, alice):
    from rest_framework.test import APIClient

    from tests.conftest import MASTER_KEY

    urls = [g.url for g in two_gateways]
    for url in urls:  # both processes have the tenant's snapshot cached
        assert post(url, alice.raw_key, body("warm up")).status_code == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    assert api.post(f"/api/v1/tenants/{alice.tenant.pk}/suspend/").status_code == 200
    assert [post(url, alice.raw_key, body("after")).status_code for url in urls] == [403, 403]
    api.post(f"/api/v1/tenants/{alice.tenant.pk}/resume/")
    assert [post(url, alice.raw_key, body("again")).status_code for url in urls] == [200, 200]
