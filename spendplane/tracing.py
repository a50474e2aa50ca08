"""OpenTelemetry: one span per proxied request, in the GenAI semantic conventions, exported over
OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.

Off, it costs one attribute read a request. On, the span is built from the request's ledger
entry when the entry is settled (after the response has gone out; in the ledger writer's thread
when rows are batched), with the request's own start and end times, and exported in batches by
the SDK's background thread: nothing waits on the collector, and a collector that is down loses
spans, never requests or ledger rows.

Attributes: `gen_ai.operation.name` (chat, embeddings, text_completion; count_tokens for token
counting), `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`,
`gen_ai.usage.output_tokens`, `gen_ai.usage.cache_read.input_tokens`,
`gen_ai.usage.cache_creation.input_tokens`, `gen_ai.request.max_tokens` where the client set it,
`server.address`, `http.response.status_code`, `error.type` on a failure; and Spendplane's own:
`spendplane.request_id`, `.tenant.id`, `.end_user`, `.feature`, `.cost_usd` (a float for the
tracing backend; the ledger's Decimal is the figure of record), `.usage_source`, `.upstream`,
`.upstream_attempts`, `.ttft_ms`, `.stream`.
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import urlsplit

logger = logging.getLogger("spendplane.tracing")

OPERATIONS = {
    "chat.completions": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "messages.count_tokens": "count_tokens",
}
PROVIDER_NAMES = {"openai": "openai", "openai_compatible": "openai", "anthropic": "anthropic"}

_lock = threading.Lock()
_provider = None
_tracer = None
_configured = False


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracing_setup(exporter=None) -> None:
    """Export spans: to `exporter` (tests: an in-memory one, synchronously), else over OTLP/HTTP
    in batches when the environment names an endpoint, else not at all."""
    global _provider, _tracer, _configured
    with _lock:
        _configured = True
        if exporter is None and not enabled():
            _provider = _tracer = None
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "spendplane")})
        provider = TracerProvider(resource=resource)
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Encoding runs in the worker's event loop (gevent): the SDK's default 512-span batches
            # took 170 ms to encode here, long enough to stall every request of the worker. Small
            # batches sent often spread the same work (measured in bench/README.md).
            processor = BatchSpanProcessor(
                OTLPSpanExporter(),
                schedule_delay_millis=float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY", 200)),
                max_export_batch_size=int(os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 32)),
            )
            provider.add_span_processor(processor)
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        _provider, _tracer = provider, provider.get_tracer("spendplane.gateway")


def tracing_flush(timeout_ms: int = 5000) -> bool:
    """Export the spans still queued (a worker about to stop; tests)."""
    provider = _provider
    return provider.force_flush(timeout_ms) if provider is not None else True


def tracing_reset() -> None:
    """Forget the configuration: the next request configures tracing again from the environment."""
    global _provider, _tracer, _configured
    _provider, _tracer, _configured = None, None, False


# A gunicorn worker forked from a configured master sets up its own exporter (and its thread).
os.register_at_fork(after_in_child=tracing_reset)


def _current_tracer():
    if not _configured:
        tracing_setup()
    return _tracer


def request_span(entry, *, upstream=None, body: dict | None = None) -> None:
    """The span of one finished request, from its ledger entry (and the client's body, for the
    output cap it asked for). Never raises; with tracing off, returns before any work."""
    tracer = _current_tracer()
    if tracer is None:
        return
    try:
        _emit(tracer, entry, upstream, _client_max_tokens(body or {}))
    except Exception:  # tracing must never cost a request or a ledger row
        logger.exception("span export failed for %s", entry.request_id)


def _client_max_tokens(body: dict) -> int | None:
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _emit(tracer, entry, upstream, max_tokens: int | None) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    operation = OPERATIONS.get(entry.endpoint, entry.endpoint)
    usage = entry.usage
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": entry.model,
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "http.response.status_code": entry.status_code,
        "spendplane.request_id": entry.request_id,
        "spendplane.usage_source": entry.usage_source,
        "spendplane.stream": entry.stream,
        "spendplane.upstream_attempts": entry.upstream_attempts,
    }
    if upstream is not None:
        attributes["gen_ai.provider.name"] = PROVIDER_NAMES.get(upstream.kind, upstream.kind)
        attributes["server.address"] = urlsplit(upstream.base_url).hostname or ""
        attributes["spendplane.upstream"] = upstream.name
    if max_tokens:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    if entry.tenant_id is not None:
        attributes["spendplane.tenant.id"] = entry.tenant_id
    if entry.end_user:
        attributes["spendplane.end_user"] = entry.end_user
    if entry.feature:
        attributes["spendplane.feature"] = entry.feature
    cost = entry.cost_usd
    if cost is not None:
        attributes["spendplane.cost_usd"] = float(cost)
    if entry.ttft_ms is not None:
        attributes["spendplane.ttft_ms"] = float(entry.ttft_ms)
    failed = entry.status_code >= 400
    if failed:
        attributes["error.type"] = entry.error_type or str(entry.status_code)
    start_ns = int(entry.created_at.timestamp() * 1_000_000_000)
    span = tracer.start_span(
        f"{operation} {entry.model}".strip(), kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
    )
    if failed:
        span.set_status(Status(StatusCode.ERROR, entry.error_type or None))
    span.end(end_time=start_ns + int(entry.latency_ms * 1_000_000))
