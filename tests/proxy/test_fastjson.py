"""The hot path's JSON codec: orjson, with the standard library behind it for what orjson refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from spendplane import fastjson
from tests.conftest import ledger_row

BIG = 2**70 + 12345  # not a power of two: a float would not hold it


def test_it_writes_compact_utf8_that_the_standard_library_reads_back():
    value = {"b": [1, 2.5, None, True], "a": "é ✓ \n", "c": {"d": "x"}}
    encoded = fastjson.dumps(value)
    assert isinstance(encoded, bytes)
    assert b", " not in encoded and "é".encode() in encoded
    assert json.loads(encoded) == value
    assert b"\n" not in encoded  # one outbox entry per line relies on it


def test_sorted_keys_give_the_same_bytes_for_the_same_value_in_any_key_order():
    first = fastjson.dumps({"b": 1, "a": {"y": 2, "x": 3}}, sort_keys=True)
    second = fastjson.dumps({"a": {"x": 3, "y": 2}, "b": 1}, sort_keys=True)
    assert first == second == b'{"a":{"x":3,"y":2},"b":1}'


def test_datetimes_match_isoformat_and_other_types_go_through_default():
    at = datetime(2026, 11, 27, 23, 46, 46, 123456, tzinfo=UTC)
    on_the_second = at.replace(microsecond=0)
    encoded = fastjson.dumps([at, on_the_second, Decimal("0.000000123")], default=str)
    assert json.loads(encoded) == [at.isoformat(), on_the_second.isoformat(), "1.23E-7"]
    with pytest.raises(TypeError):
        fastjson.dumps(Decimal("1"))


@pytest.mark.parametrize(
    "value",
    [
        {"seed": BIG},  # past 64 bits
        {1: "non-string key"},
        {"text": "\ud800"},  # a lone surrogate, which json.loads lets through
        {"deep": json.loads("[" * 300 + "]" * 300)},  # deeper than orjson's 254 levels
    ],
)
def test_what_orjson_refuses_to_write_the_standard_library_writes(value):
    encoded = fastjson.dumps(value)
    expected = json.loads(json.dumps(value))
    assert json.loads(encoded) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [(b'{"a": NaN}', "nan"), (b'{"a": Infinity}', "inf"), (b'{"a": 123456789012345678901234567890}', "big")],
)
def test_what_orjson_refuses_or_rounds_the_standard_library_reads(text, expected):
    value = fastjson.loads(text)["a"]
    if expected == "big":
        assert value == 123456789012345678901234567890 and isinstance(value, int)
    else:
        assert str(value) == expected


@pytest.mark.parametrize("number", [2**63, 2**64 - 1, 2**64, -(2**63) - 1, -(10**30)])
def test_integers_at_and_past_64_bits_read_exactly(number):
    for text in (f'{{"n": {number}}}', f'{{"n": {number}}}'.encode()):
        value = fastjson.loads(text)["n"]
        assert value == number and isinstance(value, int)


def test_a_lone_surrogate_escape_reads_as_the_standard_library_reads_it():
    assert fastjson.loads(b'{"a": "\\ud800x"}') == json.loads(b'{"a": "\\ud800x"}')


@pytest.mark.parametrize("text", [b"{not json", b'{"a": 1,}', b"", b"[1, 2"])
def test_invalid_json_raises_the_standard_librarys_error_and_message(text):
    with pytest.raises(ValueError) as ours:
        fastjson.loads(text)
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": "\\udc00 alone"}', "surrogate escape without its pair"),
    ],
)
def test_strict_reading_refuses_what_rfc_8259_does_not_allow(text, message):
    with pytest.raises(ValueError, match=message):
        fastjson.loads(text, strict=True)


def test_strict_reading_keeps_big_integers_and_paired_surrogates():
    value = fastjson.loads(b'{"n": 123456789012345678901234567890, "e": "\\ud83d\\ude00"}', strict=True)
    assert value == {"n": 123456789012345678901234567890, "e": "\U0001f600"}


def _post(live_server, key, body: str):
    return requests.post(
        live_server.url + "/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )


@pytest.mark.django_db(transaction=True)
def test_an_integer_past_64_bits_reaches_the_upstream_intact(live_server, alice, mock_upstream):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi 😀"}], "seed": BIG}
    response = _post(live_server, alice.raw_key, json.dumps(body))
    assert response.status_code == 200, response.text
    sent = mock_upstream.state.requests[-1]["body"]
    assert sent["seed"] == BIG and sent["messages"][0]["content"] == "hi 😀"
    assert ledger_row(response.headers["x-request-id"]).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("content", ["odd \ud800 text", float("nan")])
def test_a_body_that_is_not_strict_json_gets_a_400_and_never_reaches_the_upstream(
    live_server, alice, mock_upstream, content
):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "user": content})
    response = _post(live_server, alice.raw_key, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert not mock_upstream.state.requests
    assert ledger_row(response.headers["x-request-id"]).status_code == 400
