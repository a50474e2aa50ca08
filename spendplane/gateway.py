"""The request path of every proxied call, in order: authenticate, validate, route and price,
forward, settle and record. Views only pick the endpoint and return what `handle` gives.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote

import requests
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from guard import middleware as guard_step
from metering import budgets, limits, pricing, tokens
from metering.ledger_writer import batch_writer
from metering.models import StoredResponse, UsageEvent
from metering.pricing import Rates, Usage
from metering.routing import Upstream, upstreams_for
from metering.services import LedgerEntry, usage_record, usage_record_many
from metering.spool import OutboxSegment, outbox_done, outbox_write, spool_write
from tenants.auth import key_lookup, raw_key_from_headers, touch_last_used
from tenants.principal import Principal

from . import fastjson, formats, metrics, security, tracing, upstreams, validation
from .errors import ProxyError
from .log_format import request_id_var

logger = logging.getLogger("spendplane.gateway")

CHAT = "chat.completions"
EMBEDDINGS = "embeddings"
MESSAGES = "messages"
RESPONSES = "responses"
COMPLETIONS = "completions"
COUNT_TOKENS = "messages.count_tokens"

_VALIDATORS = {
    CHAT: validation.validate_chat,
    EMBEDDINGS: validation.validate_embeddings,
    MESSAGES: validation.validate_messages,
    RESPONSES: validation.validate_responses,
    COMPLETIONS: validation.validate_completions,
    COUNT_TOKENS: validation.validate_count_tokens,
}
_ANTHROPIC_ENDPOINTS = frozenset({MESSAGES, COUNT_TOKENS})
# Endpoints that produce no model output: never streamed, never guarded, never reserve output.
_NO_OUTPUT = frozenset({EMBEDDINGS, COUNT_TOKENS})
_UPSTREAM_PATHS = {
    CHAT: "chat/completions",
    EMBEDDINGS: "embeddings",
    RESPONSES: "responses",
    COMPLETIONS: "completions",
    MESSAGES: "v1/messages",
    COUNT_TOKENS: "v1/messages/count_tokens",
}
# Token counting costs nothing at the provider: its ledger rows are priced at zero.
_FREE = Rates(input=Decimal(0), output=Decimal(0), cached_input=Decimal(0), cache_write=Decimal(0), source="not_billed")
# The legacy completions endpoint's own default for an unset max_tokens.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
_UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class ProxyCall:
    endpoint: str
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=timezone.now)
    principal: Principal | None = None
    body: dict = field(default_factory=dict)
    model: str = ""
    end_user: str = ""
    feature: str = ""
    stream: bool = False
    upstream: Upstream | None = None
    upstreams: list[Upstream] = field(default_factory=list)
    upstream_attempts: int = 0
    rates: Rates | None = None
    prompt_estimate: int = 0
    upstream_ms: float | None = None
    ttft_ms: float | None = None
    grant: limits.Grant | None = None
    response_headers: dict = field(default_factory=dict)
    recorded: bool = False
    # Write the ledger row after the response has gone out (kept in the outbox until it commits).
    defer_write: bool = False
    entry: LedgerEntry | None = None
    outbox: OutboxSegment | None = None
    response_kept: bool = False  # a Responses API answer's id, kept for its tenant

    @property
    def anthropic(self) -> bool:
        return self.endpoint in _ANTHROPIC_ENDPOINTS

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def record(self, *, status: int, usage: Usage | None = None, source: str = "", error_type: str = "") -> None:
        """Settle this call's ledger entry, once, whatever path ends the request; write it now, or
        (`defer_write`) put it in the outbox for `write()` once the response is out."""
        if self.recorded:
            return
        self.recorded = True
        principal = self.principal
        self.entry = LedgerEntry(
            request_id=self.request_id,
            endpoint=self.endpoint,
            created_at=self.created_at,
            status_code=status,
            latency_ms=self.elapsed_ms(),
            tenant_id=principal.tenant_id if principal else None,
            api_key_id=principal.key_id if principal else None,
            end_user=self.end_user,
            feature=self.feature,
            model=self.model,
            provider=self.upstream.name if self.upstream else "",
            upstream_model=(self.upstream.upstream_model or self.model) if self.upstream else "",
            stream=self.stream,
            usage=usage or Usage(),
            usage_source=source or (UsageEvent.UsageSource.NONE if usage is None else UsageEvent.UsageSource.PROVIDER),
            rates=self.rates,
            error_type=error_type,
            upstream_latency_ms=self.upstream_ms,
            upstream_attempts=self.upstream_attempts,
            ttft_ms=self.ttft_ms,
        )
        if self.defer_write:
            try:
                self.outbox = outbox_write(self.entry)
            except OSError:
                logger.exception("ledger outbox unavailable for %s; writing now", self.request_id)
            else:
                if settings.SPENDPLANE_LEDGER_BATCHED:
                    entry, self.entry = self.entry, None
                    _limits_releaser.submit((self.grant, _tokens_used(entry)))
                    _ledger_writer.submit((self, entry))
                return
        self.write()

    def write(self) -> None:
        """The ledger row, the release of the rate-limit counters, the metrics; each at most once."""
        entry, self.entry = self.entry, None
        if entry is None:
            return
        try:
            usage_record(entry=entry)
            kept = True
        except Exception:
            logger.exception("ledger write failed for %s; spooling it for replay", self.request_id)
            kept = _spool(entry)
        self.written(entry, kept=kept)

    def written(self, entry: LedgerEntry, *, kept: bool) -> None:
        """Once the row is in the ledger (or, `kept`, in the spool): free the rate-limit counters,
        then `settled`."""
        try:
            limits.limits_release(self.grant, actual_tokens=_tokens_used(entry))
        finally:
            self.settled(entry, kept=kept)

    def settled(self, entry: LedgerEntry, *, kept: bool) -> None:
        """Let the outbox drop its copy (unless it is the last copy of the row), count the metrics."""
        if self.outbox is not None:
            outbox_done(self.outbox, kept=kept)
        # After the ledger, and on its own: a metrics fault must never cost a ledger row.
        try:
            metrics.observe(entry=entry)
        except Exception:
            logger.exception("metrics update failed for %s", self.request_id)
        tracing.request_span(entry, upstream=self.upstream, body=self.body)


def _tokens_used(entry: LedgerEntry) -> int:
    return entry.usage.prompt_tokens + entry.usage.completion_tokens


def _write_batch(queued: Sequence[tuple[ProxyCall, LedgerEntry]]) -> None:
    """The ledger writer's work: every queued row in one statement, or into the spool."""
    entries = [entry for _call, entry in queued]
    try:
        usage_record_many(entries, shard=os.getpid())
        kept = [True] * len(entries)
    except Exception:
        logger.exception("ledger write of %d rows failed; spooling them for replay", len(entries))
        kept = [_spool(entry) for entry in entries]
    finally:
        connection.close_if_unusable_or_obsolete()  # as after a request: back to the pool, or gone if broken
    for (call, entry), was_kept in zip(queued, kept, strict=True):
        call.settled(entry, kept=was_kept)


# Rows are safe in the outbox meanwhile; only the reservation is held a little longer.
_ledger_writer = batch_writer(
    _write_batch, name="ledger-writer", linger_seconds=settings.SPENDPLANE_LEDGER_BATCH_LINGER_MS / 1000
)
# Rate-limit slots and token corrections on a thread of their own, so a slow ledger write never
# holds a concurrency slot.
_limits_releaser = batch_writer(limits.limits_release_many, name="limits-releaser")


def _spool(entry: LedgerEntry) -> bool:
    """Keep an entry the database refused; False when the disk refused it too."""
    try:
        spool_write(entry)
    except Exception:
        # Both the database and the local disk failed: everything needed to replay it, loudly.
        logger.critical("LEDGER ROW LOST for %s: %r", entry.request_id, entry, exc_info=True)
        return False
    metrics.LEDGER_SPOOLED.inc()
    return True


def handle(request, endpoint: str) -> HttpResponse:
    call = ProxyCall(endpoint=endpoint, defer_write=settings.SPENDPLANE_LEDGER_AFTER_RESPONSE)
    request_id_var.set(call.request_id)
    try:
        response = _run(request, call)
    except Exception as exc:
        response = _error_response(exc, call)
    response["x-request-id"] = call.request_id
    for name, value in call.response_headers.items():
        response[name] = value
    if call.entry is not None:
        _write_after_sending(response, call)
    return response


def _error_response(exc: Exception, call: ProxyCall) -> HttpResponse:
    # Its own frame: a local holding the exception in `handle` would make a reference cycle
    # (exception, traceback, frame) of the request's objects.
    error = _as_proxy_error(exc, call)
    call.record(status=error.status, error_type=error.code or error.type)
    return error.response(anthropic=call.anthropic)


def _as_proxy_error(exc: Exception, call: ProxyCall) -> ProxyError:
    """What the client is told about a failure: the gateway's own refusal as is, anything else
    logged and reported without its details."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, DatabaseError):
        logger.exception("database unavailable for %s", call.request_id)
        return ProxyError(
            503, "The gateway's database is unavailable; retry shortly.", type="api_error", code="database_unavailable"
        )
    logger.exception("proxy failure on %s", call.request_id)
    return ProxyError(500, "The gateway failed to handle this request.", type="api_error", code="internal_error")


def _write_after_sending(response: HttpResponse, call: ProxyCall) -> None:
    """The server closes a response once its last byte is sent: write the ledger row then, before
    Django's own clean-up (which may close the database connection)."""
    close = response.close

    def write_then_close() -> None:
        try:
            call.write()
        finally:
            close()

    response.close = write_then_close


def _run(request, call: ProxyCall) -> HttpResponse:
    authenticate(request, call)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ProxyError(413, "The request body is too large.", code="request_too_large") from None
    call.body = validation.parse_json_object(raw)
    _VALIDATORS[call.endpoint](call.body)
    call.model = call.body["model"]
    call.stream = bool(call.body.get("stream")) and call.endpoint not in _NO_OUTPUT
    call.end_user = _end_user(request, call.body)
    call.feature = _clean_header(request.META.get("HTTP_X_SPENDPLANE_FEATURE", ""))
    _route_and_price(call)
    call.prompt_estimate = _estimate_prompt(call)
    _admit(call)
    touch_last_used(call.principal)
    _release_pooled_connection()
    if call.stream:
        return _forward_stream(request, call)
    return _forward(request, call)


def _release_pooled_connection() -> None:
    """Give a pooled database connection back while the provider works (seconds, for a stream);
    the ledger write takes one again. Without a pool, closing would only mean reconnecting."""
    if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
        connection.close()


def authenticate(request, call: ProxyCall | None = None) -> Principal:
    """The caller's principal, or a 401/403. A known key's tenant is kept on `call` even when
    the key is refused, so the rejection is recorded against it."""
    raw = raw_key_from_headers(request.META)
    if not raw:
        raise ProxyError(
            401,
            "No API key provided. Send 'Authorization: Bearer sp_…' (or 'x-api-key' for Anthropic clients).",
            type="authentication_error",
            code="missing_api_key",
        )
    principal, blocked_for = key_lookup(raw, client_meta=request.META)
    if blocked_for is not None and (principal is None or principal.revoked):
        raise ProxyError(
            429,
            f"Too many invalid API keys from this address; retry after {blocked_for} s.",
            type="rate_limit_error",
            code="too_many_invalid_keys",
            headers={"Retry-After": str(blocked_for)},
        )
    if principal is None:
        security.bad_key_note(request)
        raise ProxyError(401, "Incorrect API key provided.", type="authentication_error", code="invalid_api_key")
    if call is not None:
        call.principal = principal
    if principal.revoked:
        security.bad_key_note(request)
        raise ProxyError(401, "This API key has been revoked.", type="authentication_error", code="revoked_api_key")
    if principal.expires_at is not None and principal.expires_at <= timezone.now():
        raise ProxyError(401, "This API key has expired.", type="authentication_error", code="expired_api_key")
    if not principal.tenant_active:
        raise ProxyError(403, "This account is suspended.", type="permission_error", code="tenant_suspended")
    return principal


def _clean_header(value: str) -> str:
    return _UNSAFE_HEADER_CHARS.sub("", value).strip()[:200]


def _end_user(request, body: dict) -> str:
    header = request.META.get("HTTP_X_SPENDPLANE_USER")
    if header:
        return _clean_header(header)
    user = body.get("user")
    if isinstance(user, str):
        return _clean_header(user)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        return _clean_header(metadata["user_id"])
    return ""


def _route_and_price(call: ProxyCall) -> None:
    principal = call.principal
    if not principal.may_call(call.model):
        raise ProxyError(
            404,
            f"The model '{call.model}' does not exist or your plan does not include it.",
            type="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    found = upstreams_for(call.model)
    if not found:
        raise ProxyError(404, f"The model '{call.model}' does not exist.", code="model_not_found", param="model")
    if call.anthropic:
        found = [upstream for upstream in found if upstream.kind == "anthropic"]
        if not found:
            raise ProxyError(
                400,
                f"The model '{call.model}' is not served by an Anthropic-compatible provider; "
                "use /v1/chat/completions.",
                code="model_not_supported_on_endpoint",
                param="model",
            )
    elif call.endpoint in (RESPONSES, COMPLETIONS):
        found = [upstream for upstream in found if upstream.speaks_openai]
        if not found:
            raise ProxyError(
                400,
                f"The model '{call.model}' is not served by an OpenAI-compatible provider; use /v1/messages.",
                code="model_not_supported_on_endpoint",
                param="model",
            )
    if call.endpoint == RESPONSES:
        found = _responses_upstreams(call, found)
    call.upstreams = found
    upstream = call.upstream = found[0]
    if call.endpoint == COUNT_TOKENS:
        call.rates = _FREE
        return
    call.rates = pricing.rates_for(call.model, provider_kind=upstream.kind, tenant_id=principal.tenant_id)
    if call.rates is None and not principal.allow_unpriced_models:
        raise ProxyError(
            400,
            f"The model '{call.model}' has no known price and your plan does not allow unpriced models.",
            code="model_not_priced",
            param="model",
        )


def _responses_upstreams(call: ProxyCall, found: list[Upstream]) -> list[Upstream]:
    """A Responses API call that continues an earlier response goes to the provider holding it,
    and only if this tenant made it. Background responses finish after the request, out of the
    ledger's sight, so they are refused."""
    body = call.body
    if body.get("background"):
        raise ProxyError(
            400,
            "Background responses are not supported through the gateway: their usage could not be metered.",
            code="unsupported_parameter",
            param="background",
        )
    previous = body.get("previous_response_id")
    if not previous:
        return found
    stored = _own_response(call.principal, previous, param="previous_response_id")
    holding = [upstream for upstream in found if upstream.name == stored.provider]
    return holding or found


def _own_response(principal: Principal, response_id: str, *, param: str | None = None) -> StoredResponse:
    """The tenant's own stored response, or the 404 the provider would give for an unknown id."""
    stored = StoredResponse.objects.filter(
        response_id=response_id, tenant_id=principal.tenant_id, deleted_at__isnull=True
    ).first()
    if stored is None:
        raise ProxyError(404, f"Response with id '{response_id}' not found.", code="response_not_found", param=param)
    return stored


def _keep_response(call: ProxyCall, response_id: str) -> None:
    """Note which tenant owns a stored response, once, before its id reaches the client."""
    call.response_kept = True
    if not response_id or call.body.get("store") is False:
        return
    try:
        StoredResponse.objects.bulk_create(
            [
                StoredResponse(
                    response_id=response_id[:200],
                    tenant_id=call.principal.tenant_id,
                    provider=call.upstream.name,
                    model=call.model,
                    request_id=call.request_id,
                )
            ],
            ignore_conflicts=True,
        )
    except DatabaseError:
        logger.exception("could not keep the owner of response %s", response_id)


def _max_output_tokens(call: ProxyCall, *, cap_if_unset: bool) -> int:
    """The most output tokens this request can produce (every choice of it); sets a cap upstream
    if asked to."""
    if call.endpoint in _NO_OUTPUT:
        return 0
    body = call.body
    if call.endpoint == RESPONSES:
        stated = body.get("max_output_tokens")
        if stated:
            return stated
        default = settings.SPENDPLANE_DEFAULT_MAX_OUTPUT_TOKENS
        if cap_if_unset:
            body["max_output_tokens"] = default
        return default
    choices = _choices(body)
    if call.endpoint == COMPLETIONS:
        return (body.get("max_tokens") or COMPLETIONS_DEFAULT_MAX_TOKENS) * choices
    stated = body.get("max_completion_tokens") or body.get("max_tokens")
    if stated:
        return stated * choices
    default = settings.SPENDPLANE_DEFAULT_MAX_OUTPUT_TOKENS
    if cap_if_unset:
        body["max_completion_tokens" if call.model.startswith(("o1", "o3", "o4", "gpt-5")) else "max_tokens"] = default
    return default * choices


def _choices(body: dict) -> int:
    """How many completions one request asks for (`n`, or the legacy `best_of`, generated in full)."""
    counts = [v for v in (body.get("n"), body.get("best_of")) if isinstance(v, int) and not isinstance(v, bool)]
    return max([1, *counts])


def _admit(call: ProxyCall) -> None:
    """Rate limits (429), the guard (400 when it blocks) and budgets (402), in that order of
    precedence. The limits' answer is on its way back from Redis while the guard scans and the
    budget reservation runs on PostgreSQL; for a tenant a limit refused lately it is awaited first,
    so a flood costs neither the guard's CPU nor the database. A reservation made for a request
    that is then refused is released with its ledger row."""
    principal = call.principal
    budget_rules = budgets.rules_for(principal, end_user=call.end_user, feature=call.feature, at=call.created_at)
    max_output = _max_output_tokens(call, cap_if_unset=any(r.hard for r in budget_rules))
    pending = limits.limits_begin(
        principal=principal,
        request_id=call.request_id,
        rules=limits.rules_for(principal, end_user=call.end_user, feature=call.feature),
        token_estimate=call.prompt_estimate + max_output,
        loop=None
        if call.endpoint == COUNT_TOKENS
        else limits.loop_rule_for(principal, end_user=call.end_user, body=call.body),
    )
    if limits.recently_refused(principal.tenant_id):
        _limits_answer(call, pending)
        pending = None
    over_budget = None  # the 402, made but not raised (so holding no frames) until its turn
    try:
        detections = _guard_scan(call)
        if not guard_step.blocks(detections):
            over_budget = _reserve(call, budget_rules, max_output)
    finally:
        _limits_answer(call, pending)
    if detections:
        _guard_act(call, detections)
    if over_budget is not None:
        try:
            raise over_budget
        finally:
            over_budget = None  # a local holding the raised error would make a reference cycle


def _limits_answer(call: ProxyCall, pending: limits.PendingAdmission | None) -> None:
    """Read the limits' answer (None: already read): 429 when one says no, 503 or admission
    without limits when Redis is down, per SPENDPLANE_REDIS_FAILURE."""
    if pending is None:
        return
    try:
        call.grant = pending.result()
        call.response_headers.update(call.grant.headers)
    except limits.LimitExceeded as exceeded:
        raise ProxyError(
            429,
            f"Rate limit reached: {exceeded}. Retry after {exceeded.retry_after} s.",
            type="rate_limit_error",
            code="loop_detected" if exceeded.kind == "loop" else "rate_limit_exceeded",
            headers={"Retry-After": str(exceeded.retry_after)},
        ) from None
    except limits.LimitsUnavailable as exc:
        if settings.SPENDPLANE_REDIS_FAILURE == "closed":
            logger.error("rate-limit store unavailable, refusing %s: %s", call.request_id, exc)
            raise ProxyError(
                503,
                "Rate limits cannot be checked right now; retry shortly.",
                type="api_error",
                code="limits_unavailable",
            ) from None
        logger.warning("rate-limit store unavailable, admitting %s without rate limits: %s", call.request_id, exc)


def _guard_scan(call: ProxyCall) -> list:
    """What the guard finds in the untrusted text (embeddings and token counts reach no model)."""
    if call.endpoint in _NO_OUTPUT:
        return []
    return guard_step.inspect(call.body, call.principal)


def _guard_act(call: ProxyCall, detections: list) -> None:
    """Per the policy's action for each text: block the request (400), sanitise in place, or log."""
    guard_step.record(
        detections=detections,
        principal=call.principal,
        request_id=call.request_id,
        endpoint=call.endpoint,
    )
    if guard_step.blocks(detections):
        raise ProxyError(
            400,
            "This request was blocked: it looks like a prompt-injection attempt "
            f"(score {max(d.verdict.score for d in detections):.2f}).",
            code="prompt_injection_detected",
        )
    guard_step.sanitize(detections)


def _reserve(call: ProxyCall, budget_rules: list, max_output: int) -> ProxyError | None:
    """Reserve the worst-case cost against every budget in scope; returns the 402 to answer when
    one cannot take it."""
    principal = call.principal
    if call.rates is None or not budget_rules:
        return None
    worst = call.rates.worst_case_cost(prompt_tokens=call.prompt_estimate, max_completion_tokens=max_output)
    try:
        admission = budgets.budget_reserve(
            principal=principal, request_id=call.request_id, rules=budget_rules, amount=worst, at=call.created_at
        )
    except budgets.BudgetExceeded as exceeded:
        call.response_headers["x-spendplane-budget-remaining"] = str(exceeded.remaining)
        return ProxyError(
            402,
            f"This request (up to ${worst}) would exceed {exceeded.rule.describe()}; ${exceeded.remaining} remains.",
            type="budget_exceeded",
            code=exceeded.rule.error_code,
        )
    if admission.remaining_usd is not None:
        call.response_headers["x-spendplane-budget-remaining"] = str(admission.remaining_usd)
    return None


def _estimate_prompt(call: ProxyCall) -> int:
    body = call.body
    if call.endpoint == EMBEDDINGS:
        return tokens.count_embedding_input(call.model, body.get("input"))
    if call.endpoint == COMPLETIONS:
        return tokens.count_embedding_input(call.model, body.get("prompt"))
    if call.endpoint == COUNT_TOKENS:
        return 0  # nothing generated, nothing billed: only the request limits count it
    if call.endpoint == RESPONSES:
        return tokens.count_responses_input(call.model, body.get("input"), body.get("instructions"), body.get("tools"))
    return tokens.count_chat_prompt(call.model, body.get("messages"), body.get("tools"), body.get("system"))


def _upstream_request(call: ProxyCall, request) -> tuple[str, dict, bytes]:
    upstream = call.upstream
    body = dict(call.body)
    if upstream.upstream_model and upstream.upstream_model != call.model:
        body["model"] = upstream.upstream_model
    if call.anthropic:
        url = f"{upstream.base_url.rstrip('/')}/{_UPSTREAM_PATHS[call.endpoint]}"
        headers = upstreams.anthropic_headers(upstream, request.META)
    else:
        url = f"{upstream.openai_base}/{_UPSTREAM_PATHS[call.endpoint]}"
        headers = upstreams.openai_headers(upstream)
        if call.stream and call.endpoint != RESPONSES:  # a Responses stream always ends with its usage
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return url, headers, fastjson.dumps(body)


_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class _AttemptFailed(Exception):
    """One call to one provider failed in a way another call may not: `error` is what the client
    gets if no later attempt succeeds."""

    def __init__(self, error: ProxyError, reason: str, *, retry_same: bool, retry_after: float | None = None):
        self.error, self.reason, self.retry_same, self.retry_after = error, reason, retry_same, retry_after


def _send(call: ProxyCall, request, *, stream: bool) -> upstreams.UpstreamResponse:
    """The first usable response from the model's routes, in priority order, each retried per
    its provider's policy. Nothing has reached the client before this returns, so a retry never
    duplicates output; only the response that is relayed is metered."""
    # The failed attempt's error and wait, never the caught exception itself: its traceback holds
    # this frame, and the two would keep each other (and the request's objects) for the collector.
    error: ProxyError | None = None
    retry_after: float | None = None
    for upstream in call.upstreams:
        call.upstream = upstream
        for attempt in range(upstream.max_retries + 1):
            if attempt:
                wait = _retry_wait(attempt, retry_after)
                if wait is None:
                    break
                time.sleep(wait)
            try:
                return _send_once(call, request, stream=stream)
            except _AttemptFailed as failed:
                error, retry_after, retry_same = failed.error, failed.retry_after, failed.retry_same
                metrics.UPSTREAM_ATTEMPT_FAILURES.labels(upstream.name, failed.reason).inc()
                logger.warning(
                    "upstream %s attempt %d failed: %s", upstream.name, call.upstream_attempts, failed.reason
                )
            if not retry_same:
                break
    try:
        raise error
    finally:
        error = None


def _retry_wait(attempt: int, retry_after: float | None) -> float | None:
    """Seconds before retry number `attempt` on the same provider; None: not worth waiting for."""
    cap = settings.SPENDPLANE_UPSTREAM_RETRY_MAX_WAIT_SECONDS
    if retry_after is not None:
        return retry_after if retry_after <= cap else None
    base = settings.SPENDPLANE_UPSTREAM_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return min(cap, base * random.uniform(0.5, 1.0))


def _send_once(call: ProxyCall, request, *, stream: bool) -> upstreams.UpstreamResponse:
    url, headers, payload = _upstream_request(call, request)
    upstream = call.upstream
    call.upstream_attempts += 1
    sent = time.perf_counter()
    try:
        response = upstreams.post(upstream, url, body=payload, headers=headers, stream=stream)
    except NewConnectionError:
        call.upstream_ms = (time.perf_counter() - sent) * 1000
        logger.warning("upstream %s refused the connection", upstream.name)
        raise _AttemptFailed(_unreachable(upstream), "connection_refused", retry_same=True) from None
    except ConnectTimeoutError:
        call.upstream_ms = (time.perf_counter() - sent) * 1000
        raise _AttemptFailed(_timed_out(upstream), "connect_timeout", retry_same=True) from None
    except ReadTimeoutError:
        # The provider may still be working on it: never ask it twice, but a fallback may answer.
        call.upstream_ms = (time.perf_counter() - sent) * 1000
        raise _AttemptFailed(_timed_out(upstream), "read_timeout", retry_same=False) from None
    except (HTTPError, OSError) as exc:
        call.upstream_ms = (time.perf_counter() - sent) * 1000
        logger.warning("upstream %s unreachable: %s", upstream.name, exc.__class__.__name__)
        raise _AttemptFailed(_unreachable(upstream), exc.__class__.__name__.lower(), retry_same=True) from None
    call.upstream_ms = (time.perf_counter() - sent) * 1000
    if response.status >= 400:
        error = _upstream_error(call, response)
        if response.status in _RETRYABLE_STATUS:
            raise _AttemptFailed(
                error,
                str(response.status),
                retry_same=True,
                retry_after=_retry_after_seconds(response.headers.get("retry-after")),
            )
        raise error
    return response


def _timed_out(upstream: Upstream) -> ProxyError:
    return ProxyError(
        504, f"The upstream provider '{upstream.name}' timed out.", type="api_error", code="upstream_timeout"
    )


def _unreachable(upstream: Upstream) -> ProxyError:
    return ProxyError(
        502, f"The upstream provider '{upstream.name}' is unreachable.", type="api_error", code="upstream_unavailable"
    )


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return float("inf")  # an HTTP date: too long to wait here, so the next route is tried


def _upstream_error(call: ProxyCall, response: upstreams.UpstreamResponse) -> ProxyError:
    """The provider's own error, relayed with its status and message in the client's format. An
    error read to its end leaves its connection in the pool: a provider shedding load answers 429s
    in bursts, and each dropped connection would cost the next request a new TLS handshake."""
    try:
        content = response.data
        payload = fastjson.loads(content) if content else {}
    except (ValueError, HTTPError, OSError):
        payload = {}
    finally:
        response.release()
    detail = payload.get("error") if isinstance(payload, dict) else None
    message = detail.get("message") if isinstance(detail, dict) else None
    kind = detail.get("type") if isinstance(detail, dict) else None
    code = detail.get("code") if isinstance(detail, dict) else None
    status = response.status
    if status >= 500:
        return ProxyError(
            502,
            f"The upstream provider '{call.upstream.name}' failed ({status}): {message or 'no detail'}",
            type="api_error",
            code="upstream_error",
        )
    headers = {}
    if status == 429 and response.headers.get("retry-after"):
        headers["Retry-After"] = response.headers["retry-after"]
    return ProxyError(
        status,
        message or f"The upstream provider rejected the request ({status}).",
        type=kind or "invalid_request_error",
        code=str(code) if code else f"upstream_{status}",
        headers=headers,
    )


def _estimated(call: ProxyCall, completion_text: str, prompt_tokens: int | None = None) -> Usage:
    return Usage(
        prompt_tokens=call.prompt_estimate if prompt_tokens is None else prompt_tokens,
        completion_tokens=tokens.count_text(completion_text, call.model),
    )


def _forward(request, call: ProxyCall) -> HttpResponse:
    upstream_response = _send(call, request, stream=False)
    content = upstream_response.data
    try:
        data = fastjson.loads(content)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:
        call.record(
            status=502,
            usage=_estimated(call, ""),
            source=UsageEvent.UsageSource.ESTIMATED,
            error_type="upstream_malformed_response",
        )
        raise ProxyError(
            502,
            f"The upstream provider '{call.upstream.name}' returned a malformed response.",
            type="api_error",
            code="upstream_malformed_response",
        ) from None
    if call.endpoint == COUNT_TOKENS:
        call.record(status=upstream_response.status, usage=None)
        return HttpResponse(content, status=upstream_response.status, content_type="application/json")
    if call.endpoint == RESPONSES:
        _keep_response(call, data.get("id") if isinstance(data.get("id"), str) else "")
    usage = _USAGE_READERS.get(call.endpoint, formats.openai_usage)(data.get("usage"))
    source = UsageEvent.UsageSource.PROVIDER
    if usage is None:
        usage, source = _estimated(call, _response_text(call, data)), UsageEvent.UsageSource.ESTIMATED
    call.record(status=upstream_response.status, usage=usage, source=source)
    return HttpResponse(content, status=upstream_response.status, content_type="application/json")


_USAGE_READERS = {MESSAGES: formats.anthropic_usage, RESPONSES: formats.responses_usage}


def _response_text(call: ProxyCall, data: dict) -> str:
    if call.anthropic:
        return "".join(block.get("text", "") for block in data.get("content") or () if isinstance(block, dict))
    if call.endpoint == RESPONSES:
        return formats.responses_text(data)
    parts = []
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        elif isinstance(choice.get("text"), str):  # the legacy completions endpoint
            parts.append(choice["text"])
    return "".join(parts)


def _forward_stream(request, call: ProxyCall) -> StreamingHttpResponse:
    upstream_response = _send(call, request, stream=True)
    if not settings.SPENDPLANE_LEDGER_BATCHED:
        call.defer_write = False  # recorded after its last byte anyway: written then
    client_wants_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
    if call.anthropic:
        tracker = formats.AnthropicStreamTracker()
    elif call.endpoint == RESPONSES:
        tracker = formats.ResponsesStreamTracker()
    else:
        tracker = formats.OpenAIStreamTracker(client_wants_usage=client_wants_usage)
    relay = StreamRelay(call, upstream_response, tracker)
    response = StreamingHttpResponse(relay, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class StreamRelay:
    """The streamed body. The server calls `close()` when the response ends, is abandoned, or is
    never iterated at all; each way the upstream is closed and the request recorded once."""

    def __init__(self, call: ProxyCall, upstream_response: upstreams.UpstreamResponse, tracker) -> None:
        self.call = call
        self.upstream_response = upstream_response
        self.tracker = tracker
        self._events = _relay(call, upstream_response, tracker)

    def __iter__(self):
        return self._events

    def close(self) -> None:
        self._events.close()
        if not self.call.recorded:
            self.upstream_response.release()
            _settle_stream(self.call, self.tracker, "client_disconnected")


def _relay(call: ProxyCall, upstream_response: upstreams.UpstreamResponse, tracker):
    """Relay events as they arrive; whatever ends the stream, record it exactly once."""
    outcome = "cut"
    buffer = b""
    try:
        try:
            for chunk in upstream_response.stream():  # each piece as it arrives
                events, buffer = formats.split_sse_events(buffer + chunk)
                # What one read brought goes out in one write.
                relayed = [out for event in events if (out := tracker.relay(event)) is not None]
                if not relayed:
                    continue
                if call.endpoint == RESPONSES and not call.response_kept and tracker.response_id:
                    _keep_response(call, tracker.response_id)
                if call.ttft_ms is None and tracker.saw_content:
                    call.ttft_ms = call.elapsed_ms()
                yield b"".join(relayed)  # one item is yielded as it is, not copied
            if tracker.done:
                outcome = "complete"
        except (HTTPError, OSError) as exc:
            if isinstance(exc, ReadTimeoutError):
                logger.warning(
                    "upstream stream for %s sent nothing for %s s (its read timeout); ended it",
                    call.request_id,
                    call.upstream.read_timeout,
                )
            else:
                logger.warning("upstream stream for %s broke: %s", call.request_id, exc.__class__.__name__)
        if outcome == "cut":
            yield _stream_error_event(call)
    except GeneratorExit:
        outcome = "client_disconnected"
        raise
    finally:
        upstream_response.release()
        _settle_stream(call, tracker, outcome)


def _stream_error_event(call: ProxyCall) -> bytes:
    message = f"The upstream provider '{call.upstream.name}' ended the stream early."
    if call.anthropic:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + fastjson.dumps(body) + b"\n\n"
    body = {"error": {"message": message, "type": "api_error", "code": "upstream_stream_cut", "param": None}}
    return b"data: " + fastjson.dumps(body) + b"\n\n"


def _settle_stream(call: ProxyCall, tracker, outcome: str) -> None:
    usage = tracker.usage
    if outcome == "complete" and usage is not None:
        call.record(status=200, usage=usage, error_type="response_failed" if getattr(tracker, "failed", False) else "")
        return
    prompt = None
    if call.anthropic and tracker.start_usage:
        prompt = formats.anthropic_usage({**tracker.start_usage, "output_tokens": 0}).prompt_tokens
    estimated = _estimated(call, tracker.text, prompt)
    if outcome == "complete":
        call.record(status=200, usage=estimated, source=UsageEvent.UsageSource.ESTIMATED)
    elif outcome == "client_disconnected":
        call.record(
            status=499, usage=estimated, source=UsageEvent.UsageSource.ESTIMATED, error_type="client_disconnected"
        )
    else:
        call.record(
            status=502, usage=estimated, source=UsageEvent.UsageSource.ESTIMATED, error_type="upstream_stream_cut"
        )


def relay_stored_response(request, response_id: str, *, method: str, suffix: str = "") -> HttpResponse:
    """Retrieve, delete, cancel or list the input items of one of the tenant's own stored
    responses, on the provider that holds it; another tenant's id is a 404, as an unknown one is."""
    request_id = "req_" + uuid.uuid4().hex
    try:
        principal = authenticate(request)
        stored = _own_response(principal, response_id)
        upstream = _holding_upstream(stored)
        url = f"{upstream.openai_base}/responses/{quote(response_id, safe='')}{suffix}"
        try:
            answer = upstreams.session_for(upstream).request(
                method,
                url,
                params=request.GET.lists() if method == "GET" else None,
                headers=upstreams.openai_headers(upstream),
                timeout=(upstream.connect_timeout, upstream.read_timeout),
            )
        except requests.Timeout:
            raise _timed_out(upstream) from None
        except requests.RequestException:
            raise _unreachable(upstream) from None
        if answer.status_code >= 500:
            raise ProxyError(
                502,
                f"The upstream provider '{upstream.name}' failed ({answer.status_code}).",
                type="api_error",
                code="upstream_error",
            )
        if method == "DELETE" and answer.status_code < 300:
            StoredResponse.objects.filter(pk=stored.pk).update(deleted_at=timezone.now())
        response = HttpResponse(
            answer.content,
            status=answer.status_code,
            content_type=answer.headers.get("content-type", "application/json"),
        )
    except ProxyError as error:
        response = error.response()
    response["x-request-id"] = request_id
    return response


def _holding_upstream(stored: StoredResponse) -> Upstream:
    for upstream in upstreams_for(stored.model):
        if upstream.name == stored.provider and upstream.speaks_openai:
            return upstream
    raise ProxyError(
        404,
        f"Response '{stored.response_id}' is held by the provider '{stored.provider}', which no longer serves "
        f"'{stored.model}' here.",
        code="response_not_found",
    )
