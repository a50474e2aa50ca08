"""Metrics, structured logs with the request id, and no secret in any log line."""

from __future__ import annotations

import json
import logging

import openai
import pytest
import requests

from spendplane.log_format import JsonFormatter
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)


def metric(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_tokens_cost_and_rejections(live_server, openai_client):
    before = requests.get(live_server.url + "/metrics", timeout=5).text
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="nope-model", messages=[{"role": "user", "content": "hi"}])
    after = requests.get(live_server.url + "/metrics", timeout=5).text
    ok = metric(after, "spendplane_requests_total", endpoint="chat.completions", status="200")
    assert ok - metric(before, "spendplane_requests_total", endpoint="chat.completions", status="200") == 1
    assert metric(after, "spendplane_rejections_total", reason="model_not_found") >= 1
    assert metric(after, "spendplane_tokens_total", kind="prompt") > metric(
        before, "spendplane_tokens_total", kind="prompt"
    )
    assert metric(after, "spendplane_cost_usd_total", model="gpt-4o-mini") > 0
    assert "spendplane_request_seconds_bucket" in after


def test_metrics_can_require_a_token(live_server, settings):
    settings.SPENDPLANE_METRICS_TOKEN = "scrape-me"
    assert requests.get(live_server.url + "/metrics", timeout=5).status_code == 401
    ok = requests.get(live_server.url + "/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=5)
    assert ok.status_code == 200


def test_gateway_logs_carry_the_request_id_and_never_a_secret(openai_client, alice, caplog, live_server):
    caplog.set_level(logging.INFO)
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "MOCK_FAULT=cut"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(raw.parse())
    request_id = raw.headers["x-request-id"]
    broke = [r for r in caplog.records if r.name == "spendplane.gateway" and "broke" in r.getMessage()]
    assert broke and broke[0].request_id == request_id
    line = json.loads(JsonFormatter().format(broke[0]))
    assert line["request_id"] == request_id and line["level"] == "WARNING"
    bad = openai.OpenAI(base_url=live_server.url + "/v1", api_key=alice.raw_key + "x", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    text = caplog.text
    for secret in (alice.raw_key, MASTER_KEY, "upstream-openai-secret", "upstream-anthropic-secret"):
        assert secret not in text


def test_a_metrics_fault_never_costs_a_ledger_row(openai_client, monkeypatch):
    from spendplane import metrics

    def broken(**kwargs):
        raise RuntimeError("metrics backend down")

    monkeypatch.setattr(metrics, "observe", broken)
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    from tests.conftest import ledger_row

    assert ledger_row(raw.headers["x-request-id"]).status_code == 200
