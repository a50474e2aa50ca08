"""Property tests: whatever a client sends, the proxy answers with an OpenAI-shaped error or a
real answer, never a 500, and every request that reached the gateway is exactly one ledger row."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from metering.models import BudgetReservation, UsageEvent

pytestmark = pytest.mark.django_db

HYPOTHESIS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
odd_numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=6) | st.booleans()
contents = (
    st.text(max_size=60)
    | st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"]), "text": st.text(max_size=20)}),
        max_size=3,
    )
    | json_values
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "robot"]) | json_scalars},
        optional={"content": contents, "name": json_scalars, "tool_call_id": json_scalars},
    ),
    max_size=5,
)
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-4o-mini", "claude-3-5-haiku-latest", "no-such-model", ""]) | json_scalars,
        "messages": messages | json_values,
        "max_tokens": odd_numbers,
        "max_completion_tokens": odd_numbers,
        "stream": st.booleans() | json_scalars,
        "stream_options": json_values,
        "temperature": odd_numbers,
        "n": odd_numbers,
        "user": json_scalars,
        "tools": json_values,
        "extra_field": json_values,
    },
)

valid_chat = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["gpt-4o-mini", "gpt-4o", "o3-mini"]),
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": st.text(max_size=40)}),
            min_size=1,
            max_size=3,
        ),
        "max_tokens": st.integers(min_value=1, max_value=16),
        "stream": st.booleans(),
    }
)
# A valid body with one field replaced or added: the near misses a real client sends.
mutated_fields = st.sampled_from(["model", "messages", "max_tokens", "stream", "stream_options", "tools", "n"])
near_valid_chat = st.tuples(valid_chat, mutated_fields, json_values).map(lambda p: {**p[0], p[1]: p[2]})


def post(client, raw: bytes, key: str, **headers):
    response = client.post(
        "/v1/chat/completions", raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}", **headers
    )
    # The test client closes a stream (which records it) once its content is consumed.
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def assert_one_clean_answer(response, body: bytes, rows_before: int) -> None:
    event(f"status {response.status_code}")
    assert response.status_code != 500, body[:500]
    assert response.status_code < 500 or response.status_code in (502, 503, 504)
    if response.status_code >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str) and "code" in error
    assert UsageEvent.objects.count() == rows_before + 1
    assert not BudgetReservation.objects.exists()


@pytest.fixture
def generous(alice):
    plan = alice.tenant.plan
    plan.monthly_budget_usd = 10**6
    plan.loop_max_repeats = 0
    plan.save()
    return alice


@HYPOTHESIS
@given(body=chat_bodies | valid_chat | near_valid_chat)
def test_any_json_body_gets_an_answer_or_a_clean_error(client, generous, body):
    rows_before = UsageEvent.objects.count()
    response, content = post(client, json.dumps(body).encode(), generous.raw_key)
    assert_one_clean_answer(response, content, rows_before)


@HYPOTHESIS
@given(raw=st.binary(max_size=300))
def test_any_bytes_get_a_clean_error(client, generous, raw):
    rows_before = UsageEvent.objects.count()
    response, content = post(client, raw, generous.raw_key)
    assert_one_clean_answer(response, content, rows_before)


@HYPOTHESIS
@given(user=st.text(max_size=80), feature=st.text(max_size=80))
def test_any_attribution_header_is_stored_clean(client, generous, user, feature):
    rows_before = UsageEvent.objects.count()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    response, content = post(
        client,
        json.dumps(body).encode(),
        generous.raw_key,
        HTTP_X_SPENDPLANE_USER=user.encode("utf-8", "surrogatepass").decode("latin-1"),
        HTTP_X_SPENDPLANE_FEATURE=feature.encode("utf-8", "surrogatepass").decode("latin-1"),
    )
    assert_one_clean_answer(response, content, rows_before)
    row = UsageEvent.objects.latest("id")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in row.end_user + row.feature)
    assert response.get("x-request-id", "").startswith("req_")
