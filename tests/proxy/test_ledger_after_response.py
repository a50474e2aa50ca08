"""A non-streamed request's ledger row written after its response has gone out, by the request's
own thread when the server closes the response, from an outbox segment that outlives the process
if it dies in between. (The production default hands it to a batch writer instead:
tests/proxy/test_ledger_batched.py.)"""

from __future__ import annotations

import json
import os
import time

import pytest
from django.core.management import call_command
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import RequestFactory

from metering import spool
from metering.models import BudgetCounter, BudgetReservation, UsageEvent
from spendplane.proxy import ChatCompletionsView

pytestmark = pytest.mark.django_db

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture
def after_response(settings, tmp_path):
    settings.SPENDPLANE_LEDGER_AFTER_RESPONSE = True
    settings.SPENDPLANE_LEDGER_BATCHED = False
    settings.SPENDPLANE_LEDGER_SPOOL_DIR = str(tmp_path)
    return tmp_path


def age_outbox(directory) -> None:
    """Make every outbox segment look abandoned, as its process's death would after a minute."""
    old = time.time() - spool.OUTBOX_STALE_SECONDS - 1
    for segment in directory.glob("outbox-*.jsonl"):
        os.utime(segment, (old, old))


def post(client, key: str, body: dict = BODY):
    return client.post(
        "/v1/chat/completions", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def close_like_a_server(response) -> None:
    """What the server does after the last byte (keeping the test's database connection open)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def post_without_closing(key: str, body: dict = BODY):
    """The view's response before any server has sent and closed it."""
    request = RequestFactory().post(
        "/v1/chat/completions", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    return ChatCompletionsView.as_view()(request)


def test_the_row_waits_in_the_outbox_until_the_response_is_closed(alice, after_response):
    response = post_without_closing(alice.raw_key)
    assert response.status_code == 200
    request_id = response["x-request-id"]
    assert spool.outbox_request_ids() == {request_id}
    assert not UsageEvent.objects.filter(request_id=request_id).exists()
    assert BudgetReservation.objects.count() == 1  # the budget stays held meanwhile

    close_like_a_server(response)
    row = UsageEvent.objects.get(request_id=request_id)
    assert (row.status_code, row.completion_tokens) == (200, 8)
    assert not list(after_response.iterdir()), "the segment goes once no entry in it waits"
    assert not BudgetReservation.objects.exists()
    assert BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant").spent() == row.cost_usd


def test_rejections_are_written_after_the_response_too(client, alice, after_response):
    response = post(client, alice.raw_key, {"model": "gpt-4o-mini"})
    assert response.status_code == 400
    assert UsageEvent.objects.get(request_id=response["x-request-id"]).error_type == "missing_required_parameter"
    assert not list(after_response.iterdir())


def test_an_outbox_left_by_a_dead_process_is_replayed_once_stale(alice, after_response):
    response = post_without_closing(alice.raw_key)  # and the process dies before closing it
    assert spool.outbox_request_ids() == {response["x-request-id"]}
    call_command("replay_ledger_spool")
    assert not UsageEvent.objects.exists()  # too fresh: its process may still be writing it
    age_outbox(after_response)
    call_command("replay_ledger_spool")
    row = UsageEvent.objects.get()
    assert (row.request_id, row.status_code) == (response["x-request-id"], 200)
    assert not list(after_response.iterdir())
    assert not BudgetReservation.objects.exists()
    assert BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant").spent() == row.cost_usd


def test_when_database_and_spool_both_refuse_the_outbox_file_is_kept(alice, after_response, monkeypatch):
    from django.db import OperationalError

    from spendplane import gateway

    def refuse(**kwargs):
        raise OperationalError("database gone")

    def disk_full(entry):
        raise OSError("No space left on device")

    monkeypatch.setattr(gateway, "usage_record", refuse)
    monkeypatch.setattr(gateway, "spool_write", disk_full)
    response = post_without_closing(alice.raw_key)
    close_like_a_server(response)
    assert spool.outbox_request_ids() == {response["x-request-id"]}, "the last copy of the row must not be deleted"
    monkeypatch.undo()
    age_outbox(after_response)
    call_command("replay_ledger_spool")
    assert UsageEvent.objects.get().request_id == response["x-request-id"]
