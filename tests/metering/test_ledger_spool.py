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


def entry(request_id: str):
    from django.utils import timezone

    from metering.services import LedgerEntry

    return LedgerEntry(
        request_id=request_id, endpoint="chat", created_at=timezone.now(), status_code=200, latency_ms=1.0
    )


def segments(directory) -> list:
    return sorted(directory.glob("outbox-*.jsonl"))


def test_outbox_entries_share_a_segment_that_goes_once_none_waits(spool_dir):
    held = [spool.outbox_write(entry(f"req-{i}")) for i in range(5)]
    assert len(set(map(id, held))) == 1 and len(segments(spool_dir)) == 1
    assert spool.outbox_request_ids() == {f"req-{i}" for i in range(5)}
    for segment in held[:4]:
        spool.outbox_done(segment, kept=True)
    assert spool.outbox_request_ids() == {f"req-{i}" for i in range(5)}  # one still waits: all stay
    spool.outbox_done(held[4], kept=True)
    assert not segments(spool_dir)
    spool.outbox_done(spool.outbox_write(entry("req-next")), kept=True)  # a new segment, gone again
    assert not segments(spool_dir)


def test_a_segment_whose_entry_has_no_other_copy_is_kept(spool_dir):
    first, second = spool.outbox_write(entry("in-ledger")), spool.outbox_write(entry("nowhere-else"))
    spool.outbox_done(first, kept=True)
    spool.outbox_done(second, kept=False)
    assert spool.outbox_request_ids() == {"in-ledger", "nowhere-else"}


def test_full_or_quiet_segments_take_no_more_entries(spool_dir, monkeypatch):
    monkeypatch.setattr(spool, "OUTBOX_SEGMENT_ENTRIES", 2)
    a, b, c = (spool.outbox_write(entry(f"full-{i}")) for i in range(3))
    assert a is b and c is not a
    monkeypatch.setattr(spool, "OUTBOX_SEGMENT_QUIET_SECONDS", 0.05)
    time.sleep(0.1)
    d = spool.outbox_write(entry("after-quiet"))
    assert d is not c, "a replayer must never remove a segment its process still appends to"
    assert len(segments(spool_dir)) == 3
    for segment in (a, b, c, d):
        spool.outbox_done(segment, kept=True)
    assert not segments(spool_dir)


@pytest.mark.django_db
def test_a_stale_segment_is_replayed_whole_and_a_torn_last_line_is_skipped(spool_dir, alice):
    import os

    spool_dir.mkdir()
    lines = [json.dumps(spool._encode(entry(f"dead-{i}"))) for i in range(3)]
    path = spool_dir / "outbox-99999-abc.jsonl"
    path.write_text("\n".join(lines) + "\n" + lines[0][:40])  # the process died mid-append
    old = time.time() - spool.OUTBOX_STALE_SECONDS - 1
    os.utime(path, (old, old))
    assert spool.spool_replay() == (3, 0)
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {"dead-0", "dead-1", "dead-2"}
    assert not path.exists()


@pytest.mark.django_db
def test_a_segment_with_an_unreadable_line_is_replayed_and_kept_for_inspection(spool_dir, alice):
    import os

    spool_dir.mkdir()
    path = spool_dir / "outbox-99999-def.jsonl"
    path.write_text(json.dumps(spool._encode(entry("good"))) + "\n{not json\n")
    old = time.time() - spool.OUTBOX_STALE_SECONDS - 1
    os.utime(path, (old, old))
    spool.spool_replay()
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == ["good"]
    assert not path.exists() and path.with_suffix(".bad").exists()
