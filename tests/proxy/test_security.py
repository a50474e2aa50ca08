"""Guessed keys are slowed down, pages carry security headers, and a production configuration
passes Django's deployment checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from metering.models import UsageEvent
from tenants import services
from tenants.roles import roles_setup
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def chat(client, key: str, address: str = "203.0.113.7"):
    return client.post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        REMOTE_ADDR=address,
    )


def test_an_address_guessing_keys_gets_429_before_any_lookup(client, alice, settings):
    settings.SPENDPLANE_BAD_KEYS_PER_MINUTE = 3
    for _ in range(3):
        assert chat(client, "sp_guess_" + secrets.token_hex(8)).status_code == 401
    with CaptureQueriesContext(connection) as queries:
        refused = chat(client, "sp_guess_" + secrets.token_hex(8))
    assert queries.captured_queries, "the refusal is still a ledger row"
    assert not [q for q in queries.captured_queries if "tenants_apikey" in q["sql"]]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_invalid_keys"
    assert 0 < int(refused["Retry-After"]) <= 60
    assert chat(client, "sp_guess_x", address="198.51.100.1").status_code == 401  # another address is not affected
    assert UsageEvent.objects.filter(error_type="too_many_invalid_keys").count() == 1


def test_a_known_key_still_works_from_a_throttled_address(client, alice, settings):
    settings.SPENDPLANE_BAD_KEYS_PER_MINUTE = 2
    assert chat(client, alice.raw_key).status_code == 200  # now cached
    for _ in range(2):
        chat(client, "sp_wrong")
    assert chat(client, "sp_wrong").status_code == 429
    assert chat(client, alice.raw_key).status_code == 200


def test_revoked_keys_count_as_bad_keys(client, alice, settings):
    settings.SPENDPLANE_BAD_KEYS_PER_MINUTE = 2
    key, raw = services.api_key_create(tenant=alice.tenant, name="old")
    services.api_key_revoke(key=key)
    assert [chat(client, raw).status_code for _ in range(3)] == [401, 401, 429]


def test_the_forwarded_address_is_used_only_behind_trusted_proxies(client, alice, settings):
    settings.SPENDPLANE_BAD_KEYS_PER_MINUTE = 1

    def send(forwarded_for: str) -> int:
        return client.post(
            "/v1/chat/completions",
            "{}",
            content_type="application/json",
            HTTP_AUTHORIZATION="Bearer sp_x",
            HTTP_X_FORWARDED_FOR=forwarded_for,
        ).status_code

    settings.SPENDPLANE_TRUSTED_PROXIES = 1
    assert [send("192.0.2.50"), send("192.0.2.50"), send("192.0.2.51")] == [401, 429, 401]
    settings.SPENDPLANE_TRUSTED_PROXIES = 0  # a client cannot dodge the count by inventing the header
    assert send("192.0.2.99") == 401
    assert send("192.0.2.98") == 429


def test_the_management_api_counts_wrong_master_keys_and_tokens(alice, settings):
    settings.SPENDPLANE_BAD_KEYS_PER_MINUTE = 3
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    client.credentials(HTTP_AUTHORIZATION="Bearer wrong-master-key")
    statuses = [client.get("/api/v1/tenants/").status_code for _ in range(2)]
    client.credentials(HTTP_AUTHORIZATION="Token wrong-token")
    statuses += [client.get("/api/v1/tenants/").status_code for _ in range(2)]
    assert statuses == [401, 401, 401, 429]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    assert client.get("/api/v1/tenants/").status_code == 200  # the right key still works


def test_dashboard_pages_carry_security_headers(client, alice):
    user = User.objects.create_user("fin", is_staff=True)
    user.groups.add(roles_setup()["finance"])
    client.force_login(user)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin"


def test_proxy_answers_are_never_cached(client, alice):
    response = chat(client, alice.raw_key)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_production_configuration_passes_the_deployment_checks():
    env = {
        **os.environ,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SPENDPLANE_HTTPS": "1",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "gateway.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_api_skips_the_browser_middleware_and_the_browser_keeps_it(client, alice):
    admin = User.objects.create_superuser("root", "root@example.com", "a-long-password-1")
    client.force_login(admin)  # a session cookie the API must neither read nor write
    client.cookies["messages"] = "ignored"
    answer = chat(client, alice.raw_key)
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer and "Cookie" not in answer.get("Vary", "")
    assert not hasattr(answer.wsgi_request, "session")
    assert not answer.wsgi_request.user.is_authenticated  # DRF's anonymous user, not the session's login
    assert answer["Cache-Control"] == "no-store" and answer["X-Frame-Options"] == "DENY"

    page = client.get("/admin/")
    assert page.status_code == 200
    assert page.wsgi_request.user == admin and "Cookie" in page["Vary"]
