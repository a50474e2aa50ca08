"""Retries on one provider and fallback to the next route: the client sees one answer, the ledger
one row naming the provider that served it, and the budget the cost of that answer only."""

from __future__ import annotations

import socket
import uuid

import anthropic
import openai
import pytest

from metering.models import BudgetCounter, BudgetReservation, ModelRoute, Provider, UsageEvent
from spendplane import metrics
from spendplane.mock_upstream import MockUpstream
from tests.conftest import ledger_row
from tests.proxy.local_provider import ScriptedProvider


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"


def ask(client, content: str, **kw):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": content}], max_tokens=8, **kw
    )


def assert_settled_exactly(tenant) -> None:
    """No reservation left behind, and the tenant counter equals the ledger's cost."""
    assert not BudgetReservation.objects.exists()
    counter = BudgetCounter.objects.get(tenant=tenant, scope="tenant")
    ledger = sum((e.cost_usd or 0) for e in UsageEvent.objects.filter(tenant=tenant))
    assert counter.spent() == ledger


def closed_port_url() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def broken_upstream():
    mock = MockUpstream(fault="503").start()
    yield mock
    mock.stop()


@pytest.fixture
def slow_upstream():
    mock = MockUpstream(latency_ms=1500).start()
    yield mock
    mock.stop()


def route(model: str, base_url: str, name: str, priority: int, kind: str = "openai_compatible", **options):
    provider = Provider.objects.create(name=name, kind=kind, base_url=base_url, **options)
    return ModelRoute.objects.create(model=model, provider=provider, priority=priority)


def test_a_5xx_is_retried_and_the_retry_is_the_one_answer_charged(openai_client, alice, mock_upstream):
    content = unique("MOCK_FAULT=503 MOCK_FAIL_FIRST=1")
    raw = ask(openai_client, content)
    assert raw.http_response.status_code == 200
    assert raw.parse().choices[0].message.content
    row = ledger_row(raw.headers["x-request-id"])
    assert (row.status_code, row.upstream_attempts, row.provider) == (200, 2, "openai-default")
    assert row.cost_usd > 0
    assert len([r for r in mock_upstream.state.requests if content in str(r["body"])]) == 2
    assert UsageEvent.objects.count() == 1
    assert_settled_exactly(alice.tenant)


def test_a_streams_retried_429_keeps_its_connection_for_the_retry(openai_client, alice, settings):
    """Before its first byte a stream is retried like any request; the 429 was read to its end, so
    its keep-alive connection serves the retry (a plain request's body is read before it is
    looked at, so its connection always stays)."""
    settings.SPENDPLANE_UPSTREAM_RETRY_MAX_WAIT_SECONDS = 1
    error = b'{"error": {"message": "Slow down.", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}'
    events = [
        b'data: {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",'
        b' "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": null}]}\n\n',
        b'data: {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": [],'
        b' "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}\n\n',
        b"data: [DONE]\n\n",
    ]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"
    provider = ScriptedProvider(
        [
            [b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: %d\r\n\r\n" % len(error) + error],
            [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks],
        ]
    )
    try:
        route("gpt-4o-mini", provider.url, "shedding", 0)
        raw = ask(openai_client, unique("hello"), stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
        assert text == "ok"
        row = ledger_row(raw.headers["x-request-id"])
        assert (row.status_code, row.upstream_attempts, row.prompt_tokens, row.usage_source) == (200, 2, 5, "provider")
        assert len(provider.requests) == 2
        assert provider.accepted == 1, "the 429's connection was dropped and the retry reconnected"
    finally:
        provider.close()
    assert_settled_exactly(alice.tenant)


def test_retries_stop_at_the_configured_count(openai_client, alice, mock_upstream, settings):
    settings.SPENDPLANE_UPSTREAM_RETRIES = 2
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": unique("MOCK_FAULT=500")}]
        )
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"
    row = UsageEvent.objects.get()
    assert (row.status_code, row.upstream_attempts, row.cost_usd) == (502, 3, 0)
    assert len(mock_upstream.state.requests) == 3
    assert_settled_exactly(alice.tenant)


def test_no_retries_when_set_to_zero(openai_client, mock_upstream, settings):
    settings.SPENDPLANE_UPSTREAM_RETRIES = 0
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": unique("MOCK_FAULT=503 MOCK_FAIL_FIRST=1")}]
        )
    assert UsageEvent.objects.get().upstream_attempts == 1
    assert len(mock_upstream.state.requests) == 1


def test_a_429_whose_retry_after_is_too_long_is_relayed_without_waiting(openai_client, mock_upstream, settings):
    settings.SPENDPLANE_UPSTREAM_RETRY_MAX_WAIT_SECONDS = 0.5  # the mock asks for 1 s
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": unique("MOCK_FAULT=429")}]
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert UsageEvent.objects.get().upstream_attempts == 1


def test_a_client_error_is_never_retried(openai_client, mock_upstream, broken_upstream):
    route("gpt-4o-mini", mock_upstream.url + "/v1", "primary", 0)
    route("gpt-4o-mini", broken_upstream.url + "/v1", "fallback", 1)
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": unique("MOCK_FAULT=400")}]
        )
    assert UsageEvent.objects.get().upstream_attempts == 1
    assert not broken_upstream.state.requests


def test_a_failing_provider_falls_back_to_the_next_route(openai_client, alice, mock_upstream, broken_upstream):
    route("gpt-4o-mini", broken_upstream.url + "/v1", "broken", 0, max_retries=0)
    route("gpt-4o-mini", mock_upstream.url + "/v1", "healthy", 1)
    failures_before = metrics.UPSTREAM_ATTEMPT_FAILURES.labels("broken", "503")._value.get()
    raw = ask(openai_client, unique("hello"))
    assert raw.http_response.status_code == 200
    row = ledger_row(raw.headers["x-request-id"])
    assert (row.status_code, row.provider, row.upstream_attempts) == (200, "healthy", 2)
    assert len(broken_upstream.state.requests) == 1
    assert len(mock_upstream.state.requests) == 1
    assert metrics.UPSTREAM_ATTEMPT_FAILURES.labels("broken", "503")._value.get() == failures_before + 1
    assert_settled_exactly(alice.tenant)


def test_a_stream_falls_back_before_its_first_byte(openai_client, alice, mock_upstream, broken_upstream):
    route("gpt-4o-mini", broken_upstream.url + "/v1", "broken", 0, max_retries=1)
    route("gpt-4o-mini", mock_upstream.url + "/v1", "healthy", 1)
    raw = ask(openai_client, unique("stream please"), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text
    row = ledger_row(raw.headers["x-request-id"])
    assert (row.status_code, row.provider, row.upstream_attempts, row.usage_source) == (200, "healthy", 3, "provider")
    assert len(broken_upstream.state.requests) == 2
    assert_settled_exactly(alice.tenant)


def test_an_unreachable_provider_falls_back(openai_client, alice, mock_upstream):
    route("gpt-4o-mini", closed_port_url(), "gone", 0, max_retries=0)
    route("gpt-4o-mini", mock_upstream.url + "/v1", "healthy", 1)
    raw = ask(openai_client, unique("hi"))
    row = ledger_row(raw.headers["x-request-id"])
    assert (row.status_code, row.provider, row.upstream_attempts) == (200, "healthy", 2)


def test_a_read_timeout_is_not_retried_on_the_same_provider_but_falls_back(
    openai_client, alice, mock_upstream, slow_upstream
):
    route("gpt-4o-mini", slow_upstream.url + "/v1", "slow", 0, max_retries=3, read_timeout_s=0.3)
    route("gpt-4o-mini", mock_upstream.url + "/v1", "healthy", 1)
    raw = ask(openai_client, unique("hi"))
    row = ledger_row(raw.headers["x-request-id"])
    assert (row.status_code, row.provider, row.upstream_attempts) == (200, "healthy", 2)
    assert len(slow_upstream.state.requests) == 1


def test_when_every_route_fails_the_last_error_is_returned_once(openai_client, alice, broken_upstream):
    route("gpt-4o-mini", closed_port_url(), "gone", 0, max_retries=0)
    route("gpt-4o-mini", broken_upstream.url + "/v1", "broken", 1, max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    assert "broken" in caught.value.message
    row = UsageEvent.objects.get()
    assert (row.status_code, row.provider, row.upstream_attempts, row.cost_usd) == (502, "broken", 2, 0)
    assert_settled_exactly(alice.tenant)


def test_the_messages_endpoint_falls_back_only_to_anthropic_providers(anthropic_client, mock_upstream, broken_upstream):
    route("claude-3-5-haiku-latest", broken_upstream.url, "anthropic-broken", 0, kind="anthropic", max_retries=0)
    route("claude-3-5-haiku-latest", mock_upstream.url + "/v1", "openai-style", 1)
    route("claude-3-5-haiku-latest", mock_upstream.url, "anthropic-healthy", 2, kind="anthropic")
    message = anthropic_client.messages.with_raw_response.create(
        model="claude-3-5-haiku-latest", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    row = ledger_row(message.headers["x-request-id"])
    assert (row.status_code, row.provider, row.upstream_attempts) == (200, "anthropic-healthy", 2)
    assert isinstance(message.parse(), anthropic.types.Message)


def test_the_ledger_records_the_model_name_the_serving_provider_was_sent(openai_client, alice, mock_upstream):
    provider = Provider.objects.create(name="azure-eu", kind="openai_compatible", base_url=mock_upstream.url + "/v1")
    ModelRoute.objects.create(model="house-model", provider=provider, upstream_model="gpt-4o-mini", priority=1)
    raw = openai_client.chat.completions.with_raw_response.create(
        model="house-model", messages=[{"role": "user", "content": unique("routed")}], max_tokens=8
    )
    assert raw.http_response.status_code == 200
    row = ledger_row(raw.headers["x-request-id"])
    assert (row.model, row.provider, row.upstream_model) == ("house-model", "azure-eu", "gpt-4o-mini")
