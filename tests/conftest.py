"""The test world: tenant A (alice, bob) and tenant B (charlie), each person with a key, a
bundled mock upstream, and no network beyond this machine."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connections

from metering.models import UsageEvent
from metering.pricing import forget_overrides
from metering.routing import forget_routes
from spendplane.mock_upstream import MockUpstream
from tenants import services
from tenants.key_cache import EVERY_KEY, local_keys
from tenants.models import Plan

# Live-server threads must not keep connections open, or the test database cannot be dropped; the
# test process does without the pool (the gateway processes of tests/e2e use it, as production).
connections["default"].settings_dict["CONN_MAX_AGE"] = 0
connections["default"].settings_dict.get("OPTIONS", {}).pop("pool", None)

MASTER_KEY = "test-master-key"
_real_connect = socket.socket.connect


def _loopback_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise ConnectionRefusedError(f"tests may not reach the network ({host})")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_network():
    socket.socket.connect = _loopback_only
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(scope="session")
def mock_upstream():
    mock = MockUpstream().start()
    yield mock
    mock.stop()


@pytest.fixture(autouse=True)
def _gateway_settings(settings, mock_upstream):
    settings.SPENDPLANE_MASTER_KEY = MASTER_KEY
    settings.OPENAI_BASE_URL = mock_upstream.url + "/v1"
    settings.ANTHROPIC_BASE_URL = mock_upstream.url
    settings.OPENAI_API_KEY = "upstream-openai-secret"
    settings.ANTHROPIC_API_KEY = "upstream-anthropic-secret"
    settings.SPENDPLANE_UPSTREAM_READ_TIMEOUT = 10
    settings.SPENDPLANE_UPSTREAM_RETRY_BASE_SECONDS = 0.01
    # Rows written before the response, so a test may read the ledger as soon as it has an answer;
    # tests/proxy/test_ledger_after_response.py covers the production default.
    settings.SPENDPLANE_LEDGER_AFTER_RESPONSE = False
    cache.clear()
    local_keys.forget([EVERY_KEY])
    forget_routes()
    forget_overrides()
    mock_upstream.state.requests.clear()
    yield
    with contextlib.suppress(Exception):  # a test may have pointed the cache at a dead Redis
        cache.clear()
    forget_routes()
    forget_overrides()


class Person:
    def __init__(self, name, tenant, key, raw_key):
        self.name, self.tenant, self.key, self.raw_key = name, tenant, key, raw_key


@pytest.fixture
def plan(db):
    return Plan.objects.create(name="Pro", monthly_price_usd=Decimal("99"), monthly_budget_usd=Decimal("50"))


@pytest.fixture
def world(db, plan):
    tenant_a = services.tenant_create(name="Tenant A", external_id="tenant-a", plan=plan)
    tenant_b = services.tenant_create(name="Tenant B", external_id="tenant-b", plan=plan)
    people = {}
    for name, tenant in (("alice", tenant_a), ("bob", tenant_a), ("charlie", tenant_b)):
        key, raw = services.api_key_create(tenant=tenant, name=f"{name}'s key")
        people[name] = Person(name, tenant, key, raw)
    return people


@pytest.fixture
def alice(world):
    return world["alice"]


@pytest.fixture
def charlie(world):
    return world["charlie"]


def ledger_row(request_id: str, timeout: float = 5.0) -> UsageEvent:
    """The ledger row of a request; streams are recorded as they close, so wait briefly."""
    deadline = time.monotonic() + timeout
    while True:
        row = UsageEvent.objects.filter(request_id=request_id).first()
        if row is not None or time.monotonic() > deadline:
            assert row is not None, f"no ledger row for {request_id}"
            return row
        time.sleep(0.02)


def wait_for_rows(count: int, timeout: float = 5.0, **filters) -> list[UsageEvent]:
    deadline = time.monotonic() + timeout
    while True:
        rows = list(UsageEvent.objects.filter(**filters).order_by("id"))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


@pytest.fixture
def api():
    """The management API as the operator holding the master key."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    return client


@pytest.fixture
def openai_client(live_server, alice):
    import openai

    return openai.OpenAI(base_url=live_server.url + "/v1", api_key=alice.raw_key, max_retries=0, timeout=20)


@pytest.fixture
def anthropic_client(live_server, alice):
    import anthropic

    return anthropic.Anthropic(base_url=live_server.url, api_key=alice.raw_key, max_retries=0, timeout=20)


def room_in_this_minute(seconds: float) -> None:
    """Per-minute windows are calendar minutes: a test that counts within one waits, if need be,
    until the current minute has `seconds` left, so its requests cannot straddle two windows."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)
