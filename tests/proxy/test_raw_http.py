"""Edges the SDKs cannot produce: raw bodies, sizes, disconnects, headers."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from metering.models import UsageEvent
from tests.conftest import ledger_row, wait_for_rows

pytestmark = pytest.mark.django_db(transaction=True)


def post(live_server, key, body: bytes | str, path="/v1/chat/completions", **headers):
    return requests.post(
        live_server.url + path,
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
        timeout=10,
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_body"),
        (b"[1, 2, 3]", "invalid_body"),
        (b"", "invalid_body"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "missing_required_parameter"),
        (json.dumps({"model": 5, "messages": [{"role": "user", "content": "x"}]}), "invalid_type"),
        (json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}), "invalid_value"),
        (
            json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "invalid_type",
        ),
        (
            json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}),
            "invalid_type",
        ),
    ],
)
def test_it_rejects_bad_bodies_with_an_openai_shaped_400(live_server, alice, mock_upstream, body, code):
    response = post(live_server, alice.raw_key, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code
    assert not mock_upstream.state.requests
    assert ledger_row(response.headers["x-request-id"]).status_code == 400


def test_it_rejects_an_oversize_body_with_413(live_server, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 20_000}]})
    response = post(live_server, alice.raw_key, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unknown_fields_pass_through_to_the_upstream(live_server, alice, mock_upstream):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "seed": 7, "x_custom": {"a": 1}}
    assert post(live_server, alice.raw_key, json.dumps(body)).status_code == 200
    sent = mock_upstream.state.requests[-1]["body"]
    assert sent["seed"] == 7 and sent["x_custom"] == {"a": 1}


def test_control_characters_in_attribution_headers_are_dropped(live_server, alice):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    response = post(live_server, alice.raw_key, body, **{"X-Spendplane-Feature": "search\tbox"})
    row = ledger_row(response.headers["x-request-id"])
    assert row.feature == "searchbox"


def test_a_client_that_disconnects_mid_stream_is_recorded_once(live_server, alice, mock_upstream):
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "max_tokens": 24,
            "messages": [{"role": "user", "content": "MOCK_CHUNK_DELAY_MS=100 tell me a long story"}],
        }
    ).encode()
    host, port = live_server.thread.host, live_server.thread.port
    sock = socket.create_connection((host, port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {alice.raw_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    received = b""
    while b"data:" not in received:
        received += sock.recv(4096)
    sock.close()
    rows = wait_for_rows(1, timeout=10, tenant=alice.tenant)
    assert len(rows) == 1
    row = rows[0]
    assert (row.status_code, row.error_type, row.usage_source) == (499, "client_disconnected", "estimated")
    assert row.prompt_tokens > 0
    time.sleep(0.3)
    assert UsageEvent.objects.count() == 1


def test_the_models_list_refuses_a_wrong_key(live_server, alice):
    response = requests.get(live_server.url + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
