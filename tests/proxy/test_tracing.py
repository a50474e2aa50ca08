"""OpenTelemetry: a span per proxied request in the GenAI semantic conventions, exported when an
endpoint is configured, off and free otherwise, and never at the cost of a request."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spendplane import tracing
from tests.conftest import ledger_row

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    exporter = InMemorySpanExporter()
    tracing.tracing_setup(exporter)
    yield exporter
    tracing.tracing_reset()


def chat(url: str, key: str, **body) -> requests.Response:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], **body}
    return requests.post(f"{url}/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {key}"})


def by_request(exporter) -> dict:
    return {s.attributes["spendplane.request_id"]: s for s in exporter.get_finished_spans()}


def test_each_request_is_a_span_named_and_attributed_by_the_genai_conventions(live_server, alice, spans):
    answer = chat(live_server.url, alice.raw_key, max_tokens=40, user="u-7")
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    row = ledger_row(request_id)
    span = by_request(spans)[request_id]
    assert span.name == "chat gpt-4o-mini"
    assert span.kind.name == "CLIENT"
    attrs = span.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.max_tokens"] == 40
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (
        row.prompt_tokens,
        row.completion_tokens,
    )
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == row.cached_tokens
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["http.response.status_code"] == 200
    assert attrs["spendplane.tenant.id"] == alice.tenant.pk
    assert attrs["spendplane.end_user"] == "u-7"
    assert Decimal(str(attrs["spendplane.cost_usd"])) == row.cost_usd.normalize()
    assert "error.type" not in attrs
    assert span.status.is_ok
    took_ms = (span.end_time - span.start_time) / 1e6
    assert took_ms == pytest.approx(float(row.latency_ms), abs=0.01)
    assert span.resource.attributes["service.name"] == "spendplane"


def test_streams_embeddings_messages_and_failures_have_their_own_operations(live_server, alice, spans):
    stream = chat(live_server.url, alice.raw_key, stream=True)
    stream.content  # noqa: B018 (a stream is recorded when it ends)
    embed = requests.post(
        f"{live_server.url}/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "one two"},
        headers={"Authorization": f"Bearer {alice.raw_key}"},
    )
    message = requests.post(
        f"{live_server.url}/v1/messages",
        json={"model": "claude-3-5-haiku-latest", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": alice.raw_key},
    )
    unknown = chat(live_server.url, alice.raw_key, model="no-such-model")
    ids = [r.headers["x-request-id"] for r in (stream, embed, message, unknown)]
    for request_id in ids[:3]:
        ledger_row(request_id)
    deadline = time.monotonic() + 5
    while len(by_request(spans)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    found = by_request(spans)
    assert found[ids[0]].attributes["spendplane.stream"] is True
    assert found[ids[1]].attributes["gen_ai.operation.name"] == "embeddings"
    claude = found[ids[2]].attributes
    assert (claude["gen_ai.operation.name"], claude["gen_ai.provider.name"]) == ("chat", "anthropic")
    failed = found[ids[3]]
    assert unknown.status_code == 404
    assert failed.attributes["error.type"] == "model_not_found"
    assert failed.attributes["http.response.status_code"] == 404
    assert not failed.status.is_ok


def test_tracing_is_off_and_builds_nothing_without_an_endpoint(live_server, alice, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.tracing_reset()
    built = []
    monkeypatch.setattr(tracing, "_emit", lambda *args: built.append(args))
    assert chat(live_server.url, alice.raw_key).status_code == 200
    assert built == [] and tracing._tracer is None


def test_an_exporter_that_fails_costs_no_request_and_no_ledger_row(live_server, alice, monkeypatch):
    class Broken(InMemorySpanExporter):
        def export(self, spans):
            raise ConnectionError("collector down")

    tracing.tracing_setup(Broken())
    try:
        answer = chat(live_server.url, alice.raw_key)  # the exporter raises
        assert answer.status_code == 200
        assert ledger_row(answer.headers["x-request-id"]).status_code == 200
        monkeypatch.setattr(tracing, "_emit", lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
        answer = chat(live_server.url, alice.raw_key)  # building the span raises
        assert answer.status_code == 200
        assert ledger_row(answer.headers["x-request-id"]).status_code == 200
    finally:
        tracing.tracing_reset()


def test_spans_go_out_over_otlp_http_to_the_configured_collector(live_server, alice, mock_upstream, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", mock_upstream.url)
    mock_upstream.state.traces.clear()
    tracing.tracing_reset()
    try:
        answer = chat(live_server.url, alice.raw_key)
        assert answer.status_code == 200
        assert tracing.tracing_flush()
    finally:
        tracing.tracing_reset()
    exported = ExportTraceServiceRequest()
    exported.ParseFromString(mock_upstream.state.traces[-1])
    span = exported.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "chat gpt-4o-mini"
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o-mini"
    assert attrs["spendplane.request_id"].string_value == answer.headers["x-request-id"]
