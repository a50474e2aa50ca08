"""The production server (gunicorn's gevent worker, spendplane/gunicorn.conf.py) as a client sees
it: many slow requests at once without a thread each, a stop that finishes what is in flight and
does not wait for idle keep-alive clients, a provider stream's read timeout kept per quiet gap
(spendplane/stream_watch.py)."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from metering.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)


def chat(url: str, person, content: str, *, session=None, stream: bool = False, **fields) -> requests.Response:
    return (session or requests).post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}], **fields},
        headers={"Authorization": f"Bearer {person.raw_key}"},
        timeout=60,
        stream=stream,
    )


def test_one_worker_holds_more_slow_requests_than_it_has_threads(start_gateway, alice):
    # 1 worker whose thread count is 2: under gthread 48 requests of 1 s would take 24 s.
    gateway = start_gateway(SPENDPLANE_THREADS="2")
    started = time.monotonic()
    with ThreadPoolExecutor(48) as pool:
        statuses = list(
            pool.map(lambda i: chat(gateway.url, alice, f"MOCK_LATENCY_MS=1000 q{i}").status_code, range(48))
        )
    took = time.monotonic() - started
    assert statuses == [200] * 48
    assert took < 8, f"48 one-second requests took {took:.1f} s"


def test_a_stop_finishes_an_open_stream_and_does_not_wait_for_idle_keep_alive_clients(start_gateway, alice):
    gateway = start_gateway()
    idle = requests.Session()
    assert chat(gateway.url, alice, "hello", session=idle).status_code == 200  # its connection stays open

    stream = chat(gateway.url, alice, "MOCK_REPLY_TOKENS=30 MOCK_CHUNK_DELAY_MS=50 a story", stream=True)
    lines = stream.iter_lines()
    assert next(line for line in lines if line.startswith(b"data:"))
    stopped_at = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    rest = [line for line in lines if line]  # about 1.5 s of chunks still to come
    assert rest[-1] == b"data: [DONE]"
    gateway.proc.wait(timeout=25)
    took = time.monotonic() - stopped_at
    assert took < 10, f"the stop took {took:.1f} s (graceful_timeout is 30 s: something idle held it)"
    assert UsageEvent.objects.filter(status_code=200).count() == 2


def test_a_stream_ends_when_its_provider_is_quiet_past_the_read_timeout_and_not_before(start_gateway, alice):
    gateway = start_gateway(SPENDPLANE_UPSTREAM_READ_TIMEOUT="1")

    # Eight chunks 0.4 s apart: 3 s in all, more than the timeout, but never quiet for that long.
    started = time.monotonic()
    steady = chat(gateway.url, alice, "MOCK_CHUNK_DELAY_MS=400 steady", stream=True, max_tokens=8)
    lines = [line for line in steady.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    assert time.monotonic() - started > 2.5

    # Quiet for 5 s halfway: ended within the timeout and the watcher's one-second round.
    started = time.monotonic()
    stalled = chat(gateway.url, alice, "MOCK_FAULT=stall MOCK_SLEEP=5 stalled", stream=True)
    lines = [line for line in stalled.iter_lines() if line]
    took = time.monotonic() - started
    assert b"upstream_stream_cut" in lines[-1]
    assert 0.9 < took < 3.5, f"the stalled stream ended after {took:.1f} s"
    rows = UsageEvent.objects.filter(request_id=stalled.headers["x-request-id"])
    assert [(r.status_code, r.error_type) for r in rows] == [(502, "upstream_stream_cut")]

    # The gateway's connection to the provider was shut, not returned to the pool half-read.
    after = chat(gateway.url, alice, "after the stall", stream=True)
    assert [line for line in after.iter_lines() if line][-1] == b"data: [DONE]"
