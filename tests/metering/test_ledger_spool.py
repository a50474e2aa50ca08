"""A database that cannot take a ledger row never costs the row: it is spooled to disk and
replayed, exactly once, with the budget settled to the same cost."""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import call_command
from django.db import OperationalError

from metering import spool
from metering.models import BudgetCounter, BudgetReservation, UsageEvent
from metering.services import usage_record as real_usage_record
from spendplane import gateway


@pytest.fixture
def spool_dir(settings, tmp_path):
    settings.SPENDPLANE_LEDGER_SPOOL_DIR = str(tmp_path / "spool")
    return tmp_path / "spool"


@pytest.fixture
def ledger_down(monkeypatch):
    """The ledger write fails as it would with the database gone; everything else still works."""
    state = {"down": True, "failed": 0}

    def flaky_usage_record(*, entry):
        if state["down"]:
            state["failed"] += 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_usage_record(entry=entry)

    monkeypatch.setattr(gateway, "usage_record", flaky_usage_record)
    monkeypatch.setattr(spool, "usage_record", flaky_usage_record)
    return state


def wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_row_the_database_refuses_is_spooled_and_replayed_once(openai_client, alice, spool_dir, ledger_down):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert raw.http_response.status_code == 200  # the answer was paid for: the client gets it
    request_id = raw.headers["x-request-id"]
    spooled = json.loads((spool_dir / f"{request_id}.json").read_text())
    assert spooled["usage"]["completion_tokens"] == 8
    assert not UsageEvent.objects.exists()
    assert BudgetReservation.objects.count() == 1  # still held: the budget stays safe meanwhile

    ledger_down["down"] = False  # the database is back; the process's replayer finds it
    wait_until(lambda: UsageEvent.objects.filter(request_id=request_id).exists())
    row = UsageEvent.objects.get()
    assert (row.status_code, row.completion_tokens) == (200, 8)
    assert row.cost_usd > 0
    wait_until(lambda: not any(spool_dir.glob("*.json")))
    assert not BudgetReservation.objects.exists()
    assert BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant").spent() == row.cost_usd


def test_replaying_twice_never_double_counts(openai_client, alice, spool_dir, ledger_down, monkeypatch):
    monkeypatch.setattr(spool, "_start_replayer", lambda: None)  # replay by hand here
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    request_id = raw.headers["x-request-id"]
    copy = (spool_dir / f"{request_id}.json").read_text()
    assert spool.spool_replay() == (0, 1)  # still down: the file stays
    ledger_down["down"] = False
    assert spool.spool_replay() == (1, 0)
    (spool_dir / f"{request_id}.json").write_text(copy)  # a second replayer holding the same file
    assert spool.spool_replay() == (1, 0)
    assert UsageEvent.objects.count() == 1
    counter = BudgetCounter.objects.get(tenant=alice.tenant, scope="tenant")
    assert counter.spent() == UsageEvent.objects.get().cost_usd


def test_the_replay_command_reports_and_fails_while_rows_remain(alice, spool_dir, ledger_down, monkeypatch, capsys):
    monkeypatch.setattr(spool, "_start_replayer", lambda: None)
    call = gateway.ProxyCall(endpoint=gateway.CHAT)
    call.record(status=400, error_type="invalid_json")
    with pytest.raises(SystemExit):
        call_command("replay_ledger_spool")
    ledger_down["down"] = False
    call_command("replay_ledger_spool")
    assert "Replayed 1; 0 left." in capsys.readouterr().out
    assert UsageEvent.objects.get().error_type == "invalid_json"


def test_a_database_outage_before_admission_is_a_clean_503(openai_client, alice, monkeypatch, mock_upstream):
    def database_gone(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(gateway.budgets, "rules_for", database_gone)
    with pytest.raises(Exception) as caught:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    assert caught.value.code == "database_unavailable"
    assert not mock_upstream.state.requests
    assert UsageEvent.objects.get().error_type == "database_unavailable"
