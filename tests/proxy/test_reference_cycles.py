"""A proxied request's objects are freed by reference counting the moment it ends. Anything left in
a reference cycle waits for the cyclic collector, which at production's threshold ran as pauses of
15-45 ms (bench/README.md), each one a request's worth of extra latency for every request waiting."""

from __future__ import annotations

import gc
import io
import json
import wsgiref.util
from decimal import Decimal

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.db import close_old_connections
from django.http import HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from metering import limits
from tenants.models import Budget, RateLimit
from tests.conftest import room_in_this_minute

pytestmark = pytest.mark.django_db


def _call(handler: WSGIHandler, raw_key: str, body: dict | bytes) -> tuple[str, bytes]:
    """The request through Django's WSGI handler, as gunicorn makes it (the test client keeps
    references of its own, in cycles, to every response). As in the test client, the test's
    database connection stays open across the request."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(payload)),
        "HTTP_AUTHORIZATION": f"Bearer {raw_key}",
        "wsgi.input": io.BytesIO(payload),
    }
    wsgiref.util.setup_testing_defaults(environ)
    statuses = []
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = handler(environ, lambda status, headers, exc_info=None: statuses.append(status))
        try:
            content = b"".join(chunks)
        finally:
            chunks.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return statuses[0], content


def _left_in_cycles(run) -> list[str]:
    """Names of the request-scoped objects that only the cyclic collector could free."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        kinds = (Request, APIView, WSGIRequest, HttpResponseBase)
        return sorted({type(found).__name__ for found in gc.garbage if isinstance(found, kinds)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_proxied_request_leaves_nothing_for_the_cyclic_collector(alice, stream):
    handler = WSGIHandler()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    assert _call(handler, alice.raw_key, body)[0].startswith("200")  # warm: imports, caches, pools

    def run():
        for _ in range(3):
            status, content = _call(handler, alice.raw_key, body)
            assert status.startswith("200"), content

    assert _left_in_cycles(run) == []


def _ask(content: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        ("sk-not-a-key", _ask("hi"), 401, "invalid_api_key"),
        (None, b'{"model": "gpt-4o-mini", "messages": [', 400, "invalid_json"),
        (None, _ask("MOCK_FAULT=503"), 502, "upstream_error"),
        (None, _ask("MOCK_FAULT=malformed"), 502, "upstream_malformed_response"),
        (None, _ask("MOCK_FAULT=503 MOCK_FAIL_FIRST=1"), 200, None),
    ],
    ids=["bad-key", "bad-json", "upstream-5xx", "upstream-malformed", "retried-then-answered"],
)
def test_a_refused_failed_or_retried_request_leaves_nothing_for_the_cyclic_collector(alice, key, body, status, code):
    handler = WSGIHandler()
    assert _call(handler, alice.raw_key, _ask("warm"))[0].startswith("200")

    def run():
        answer, content = _call(handler, key or alice.raw_key, body)
        assert answer.startswith(str(status)), content
        assert (json.loads(content).get("error") or {}).get("code") == code

    assert _left_in_cycles(run) == []


@pytest.mark.parametrize("refusal", ["budget", "limit", "limit-and-budget"])
def test_a_request_refused_at_admission_leaves_nothing_for_the_cyclic_collector(alice, refusal):
    limits.reset_counters()
    room_in_this_minute(10)
    handler = WSGIHandler()
    if refusal != "budget":
        RateLimit.objects.create(tenant=alice.tenant, scope="key", subject="*", rpm_limit=1)
    assert _call(handler, alice.raw_key, _ask("warm"))[0].startswith("200")  # and the minute's one request
    if refusal != "limit":
        Budget.objects.create(tenant=alice.tenant, scope="tenant", period="day", limit_usd=Decimal("0.000000001"))
    expected = (402, "tenant_budget_exceeded") if refusal == "budget" else (429, "rate_limit_exceeded")

    def run():
        for _ in range(2):  # the first refusal and, for a limit, one after it (checked limit first)
            answer, content = _call(handler, alice.raw_key, _ask("hi"))
            assert (int(answer[:3]), json.loads(content)["error"]["code"]) == expected, content

    assert _left_in_cycles(run) == []
