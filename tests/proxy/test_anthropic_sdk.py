"""The Anthropic SDK against /v1/messages on a live gateway."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import anthropic
import genai_prices
import pytest

from metering.models import UsageEvent
from tests.conftest import ledger_row

pytestmark = pytest.mark.django_db(transaction=True)

LONG_PROMPT = "Classify this support ticket about invoices and refunds. " * 150


def anthropic_cost(row: UsageEvent) -> Decimal:
    usage = genai_prices.Usage(
        input_tokens=row.prompt_tokens, cache_read_tokens=row.cached_tokens, output_tokens=row.completion_tokens
    )
    total = genai_prices.calc_price(usage, "claude-3-5-haiku-latest", provider_id="anthropic").total_price
    return total.quantize(Decimal("0.000000001"), rounding=ROUND_HALF_UP)


def test_it_records_a_message_with_cache_reads_converted_to_openai_convention(anthropic_client, mock_upstream):
    raw = anthropic_client.messages.with_raw_response.create(
        model="claude-3-5-haiku-latest",
        max_tokens=50,
        messages=[{"role": "user", "content": LONG_PROMPT}],
        metadata={"user_id": "ticket-bot"},
    )
    message = raw.parse()
    row = ledger_row(raw.headers["x-request-id"])
    usage = message.usage
    assert usage.cache_read_input_tokens > 0
    assert row.prompt_tokens == usage.input_tokens + usage.cache_read_input_tokens
    assert row.cached_tokens == usage.cache_read_input_tokens
    assert row.completion_tokens == usage.output_tokens
    assert row.cost_usd == anthropic_cost(row)
    assert row.end_user == "ticket-bot"
    assert mock_upstream.state.requests[-1]["headers"]["x-api-key"] == "upstream-anthropic-secret"


def test_it_streams_messages_and_records_the_final_usage(anthropic_client):
    with anthropic_client.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=10, messages=[{"role": "user", "content": "stream please"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    row = ledger_row(request_id)
    assert text.startswith("the gateway")
    assert row.stream and row.usage_source == "provider"
    assert row.completion_tokens == final.usage.output_tokens
    assert row.prompt_tokens == final.usage.input_tokens


def test_it_accepts_the_key_in_x_api_key_and_rejects_a_wrong_one(live_server):
    client = anthropic.Anthropic(base_url=live_server.url, api_key="sp_wrong-key-wrong-key-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"


def test_it_answers_a_bad_messages_body_with_an_anthropic_shaped_error(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(model="claude-3-5-haiku-latest", max_tokens=0, messages=[])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_it_refuses_a_model_of_an_openai_provider_on_messages(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "chat/completions" in caught.value.body["error"]["message"]


def test_a_cut_anthropic_stream_is_recorded_with_estimated_output(anthropic_client):
    with (
        pytest.raises(anthropic.APIError),
        anthropic_client.messages.stream(
            model="claude-3-5-haiku-latest", max_tokens=20, messages=[{"role": "user", "content": "MOCK_FAULT=cut"}]
        ) as stream,
    ):
        request_id = stream.response.headers["x-request-id"]
        list(stream.text_stream)
    row = ledger_row(request_id)
    assert (row.status_code, row.usage_source) == (502, "estimated")
    assert row.prompt_tokens > 0 and row.completion_tokens > 0
