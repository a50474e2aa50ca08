"""Prometheus metrics for the proxy, and the /metrics view.

Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR (spendplane/gunicorn.conf.py
does) so every worker's samples are summed; without it, this process's own samples are served.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("spendplane_requests_total", "Proxied requests by endpoint and status.", ["endpoint", "status"])
LATENCY = Histogram(
    "spendplane_request_seconds", "Total request latency, streams to their end.", ["endpoint"], buckets=LATENCY_BUCKETS
)
UPSTREAM_LATENCY = Histogram(
    "spendplane_upstream_seconds", "Time to the upstream's response headers.", ["provider"], buckets=LATENCY_BUCKETS
)
TOKENS = Counter("spendplane_tokens_total", "Tokens metered, by kind.", ["kind"])
COST = Counter("spendplane_cost_usd_total", "AI cost metered (USD; the ledger has the exact Decimal).", ["model"])
REJECTIONS = Counter("spendplane_rejections_total", "Requests refused by the gateway, by reason.", ["reason"])
UPSTREAM_ERRORS = Counter(
    "spendplane_upstream_errors_total", "Upstream failures, by provider and kind.", ["provider", "kind"]
)
UPSTREAM_ATTEMPT_FAILURES = Counter(
    "spendplane_upstream_attempt_failures_total",
    "Failed calls to a provider that were retried or fell back to another route, by provider and reason.",
    ["provider", "reason"],
)
LEDGER_SPOOLED = Counter(
    "spendplane_ledger_spooled_total",
    "Ledger rows the database could not take, written to the local spool for replay.",
)

# Error types the gateway itself decides (the rest come from upstreams or clients).
GATEWAY_REJECTIONS = {
    "missing_api_key", "invalid_api_key", "too_many_invalid_keys", "revoked_api_key", "expired_api_key",
    "tenant_suspended",
    "rate_limit_exceeded", "loop_detected", "limits_unavailable", "prompt_injection_detected", "model_not_found",
    "model_not_priced", "request_too_large", "invalid_json", "invalid_body", "invalid_type", "invalid_value",
    "missing_required_parameter", "database_unavailable",
}  # fmt: skip


def observe(*, entry) -> None:
    """Count one finished request from its ledger entry (called once per ledger row)."""
    endpoint, error_type, provider, usage = entry.endpoint, entry.error_type, entry.provider, entry.usage
    REQUESTS.labels(endpoint, str(entry.status_code)).inc()
    LATENCY.labels(endpoint).observe(entry.latency_ms / 1000)
    if entry.upstream_latency_ms is not None and provider:
        UPSTREAM_LATENCY.labels(provider).observe(entry.upstream_latency_ms / 1000)
    if error_type.endswith("_budget_exceeded") or error_type in GATEWAY_REJECTIONS:
        REJECTIONS.labels(error_type).inc()
    elif error_type.startswith("upstream") and provider:
        UPSTREAM_ERRORS.labels(provider, error_type).inc()
    TOKENS.labels("prompt").inc(usage.prompt_tokens)
    TOKENS.labels("cached").inc(usage.cached_tokens)
    TOKENS.labels("completion").inc(usage.completion_tokens)
    TOKENS.labels("reasoning").inc(usage.reasoning_tokens)
    cost = entry.cost_usd
    if cost:
        COST.labels(entry.model or "unknown").inc(float(cost))


def metrics_view(request):
    token = settings.SPENDPLANE_METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")[7:]
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
