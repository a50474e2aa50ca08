"""The OpenAI SDK against a live gateway and the bundled mock upstream."""

from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
import openai
import pytest

from metering.models import UsageEvent
from tenants import services
from tests.conftest import ledger_row, wait_for_rows

pytestmark = pytest.mark.django_db(transaction=True)

LONG_PROMPT = "Summarise the quarterly usage report for the finance team. " * 150


def expected_cost(model: str, provider: str, row: UsageEvent) -> Decimal:
    """The cost genai-prices itself computes for the row's tokens, to the nano-dollar."""
    usage = genai_prices.Usage(
        input_tokens=row.prompt_tokens,
        cache_read_tokens=row.cached_tokens,
        output_tokens=row.completion_tokens,
    )
    total = genai_prices.calc_price(usage, model, provider_id=provider).total_price
    return total.quantize(Decimal("0.000000001"), rounding=ROUND_HALF_UP)


def test_it_records_a_chat_completion_exact_to_the_token_and_the_microdollar(openai_client, alice, mock_upstream):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": LONG_PROMPT}],
        extra_headers={"X-Spendplane-Feature": "report-summary"},
        user="end-user-7",
    )
    completion = raw.parse()
    row = ledger_row(raw.headers["x-request-id"])

    assert completion.usage.prompt_tokens_details.cached_tokens > 0
    assert row.prompt_tokens == completion.usage.prompt_tokens
    assert row.cached_tokens == completion.usage.prompt_tokens_details.cached_tokens
    assert row.completion_tokens == completion.usage.completion_tokens
    assert row.usage_source == "provider"
    assert row.cost_usd == expected_cost("gpt-4o-mini", "openai", row)
    assert row.cost_usd > 0
    assert (row.tenant_id, row.api_key_id) == (alice.tenant.pk, alice.key.pk)
    assert (row.end_user, row.feature, row.status_code) == ("end-user-7", "report-summary", 200)
    assert row.latency_ms >= row.upstream_latency_ms > 0
    # the upstream saw the provider's key, never the tenant's
    sent = mock_upstream.state.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer upstream-openai-secret"


def test_it_records_reasoning_tokens_inside_completion_tokens(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="o3-mini", messages=[{"role": "user", "content": "Think, then answer: 2+2?"}]
    )
    completion = raw.parse()
    row = ledger_row(raw.headers["x-request-id"])
    assert row.reasoning_tokens == completion.usage.completion_tokens_details.reasoning_tokens > 0
    assert row.completion_tokens == completion.usage.completion_tokens
    assert row.cost_usd == expected_cost("o3-mini", "openai", row)


def test_it_streams_and_records_usage_the_client_never_asked_for(openai_client, mock_upstream):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream me a short answer"}],
        stream=True,
        extra_headers={"X-Spendplane-User": "streamer"},
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    row = ledger_row(raw.headers["x-request-id"])

    assert text.startswith("the gateway sends")
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert mock_upstream.state.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert row.usage_source == "provider"
    assert row.stream is True
    assert row.completion_tokens > 0 and row.prompt_tokens > 0
    assert row.end_user == "streamer"
    assert row.ttft_ms is not None and row.ttft_ms <= row.latency_ms
    assert row.cost_usd == expected_cost("gpt-4o-mini", "openai", row)


def test_it_relays_the_usage_chunk_to_a_client_that_asked(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream with usage"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    usage = chunks[-1].usage
    row = ledger_row(raw.headers["x-request-id"])
    assert usage is not None
    assert (row.prompt_tokens, row.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)


def test_it_meters_embeddings(openai_client):
    raw = openai_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["first text", "second text"]
    )
    result = raw.parse()
    row = ledger_row(raw.headers["x-request-id"])
    assert len(result.data) == 2
    assert row.endpoint == "embeddings"
    assert row.prompt_tokens == result.usage.prompt_tokens > 0
    assert row.completion_tokens == 0
    assert row.cost_usd == expected_cost("text-embedding-3-small", "openai", row)


def test_it_lists_the_models_of_the_tenant(openai_client, alice):
    names = {m.id for m in openai_client.models.list()}
    assert {"gpt-4o-mini", "text-embedding-3-small"} <= names

    alice.tenant.plan.allowed_models = ["gpt-4o-mini"]
    alice.tenant.plan.save()
    assert [m.id for m in openai_client.models.list()] == ["gpt-4o-mini"]


def test_it_rejects_a_wrong_key_with_authentication_error(live_server):
    client = openai.OpenAI(base_url=live_server.url + "/v1", api_key="sp_not-a-real-key-at-all", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "invalid_api_key"
    row = UsageEvent.objects.get()
    assert (row.status_code, row.tenant_id, row.error_type) == (401, None, "invalid_api_key")


def test_it_rejects_a_revoked_key_on_the_next_request(openai_client, alice):
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    services.api_key_revoke(key=alice.key)
    with pytest.raises(openai.AuthenticationError) as caught:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "revoked_api_key"


def test_it_rejects_a_suspended_tenant_with_permission_denied(openai_client, alice):
    alice.tenant.status = "suspended"
    alice.tenant.save()
    with pytest.raises(openai.PermissionDeniedError):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert UsageEvent.objects.get().tenant_id == alice.tenant.pk


def test_it_answers_a_malformed_body_with_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages="not a list")
    assert caught.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=-5
        )
    assert caught.value.body["param"] == "max_tokens"
    assert UsageEvent.objects.filter(status_code=400).count() == 2


def test_it_answers_an_unknown_model_with_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(model="gpt-unknown-9", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"
    row = UsageEvent.objects.get()
    assert (row.status_code, row.cost_usd, row.prompt_tokens) == (404, None, 0)


def test_it_records_an_unpriced_model_as_unpriced_not_free(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="mock-unpriced-1", messages=[{"role": "user", "content": "hi"}]
    )
    row = ledger_row(raw.headers["x-request-id"])
    assert row.priced is False
    assert row.cost_usd is None
    assert row.completion_tokens > 0


def test_a_plan_can_refuse_unpriced_models(openai_client, alice, mock_upstream):
    alice.tenant.plan.allow_unpriced_models = False
    alice.tenant.plan.save()
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="mock-unpriced-1", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_priced"
    assert not mock_upstream.state.requests


def test_an_upstream_5xx_is_a_clear_error_and_is_not_charged(openai_client):
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "MOCK_FAULT=500"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"
    row = UsageEvent.objects.get()
    assert (row.status_code, row.cost_usd, row.completion_tokens) == (502, Decimal("0E-9"), 0)


def test_an_upstream_429_is_relayed_with_retry_after(openai_client):
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "MOCK_FAULT=429"}]
        )
    assert caught.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize("fault", ["MOCK_FAULT=cut", "MOCK_FAULT=stall MOCK_SLEEP=3"])
def test_a_stream_cut_or_stalled_by_the_upstream_ends_with_an_error_and_is_recorded_estimated(
    openai_client, settings, fault
):
    settings.SPENDPLANE_UPSTREAM_READ_TIMEOUT = 0.5  # a stall is a cut once the provider is this quiet
    started = time.monotonic()
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"{fault} please"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(raw.parse())
    row = ledger_row(raw.headers["x-request-id"])
    assert (row.status_code, row.error_type, row.usage_source) == (502, "upstream_stream_cut", "estimated")
    assert row.completion_tokens > 0
    assert row.cost_usd > 0
    assert time.monotonic() - started < 2.5, "the stall was waited out, not timed out"


def test_a_stream_without_provider_usage_is_recorded_with_estimated_tokens(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "MOCK_FAULT=nousage"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    row = ledger_row(raw.headers["x-request-id"])
    assert row.usage_source == "estimated"
    assert row.status_code == 200
    assert row.completion_tokens == len(__import__("tiktoken").get_encoding("o200k_base").encode(text))


def test_an_upstream_timeout_is_a_504(openai_client, settings):
    settings.SPENDPLANE_UPSTREAM_READ_TIMEOUT = 0.3
    with pytest.raises(openai.APIStatusError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "MOCK_FAULT=timeout MOCK_SLEEP=1"}]
        )
    assert caught.value.status_code == 504
    assert UsageEvent.objects.get().error_type == "upstream_timeout"


def test_a_malformed_upstream_response_is_a_502(openai_client):
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "MOCK_FAULT=malformed"}]
        )
    assert caught.value.code == "upstream_malformed_response"
    rows = wait_for_rows(1)
    assert len(rows) == 1 and rows[0].usage_source == "estimated"
