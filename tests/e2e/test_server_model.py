"""The production server (gunicorn's gevent worker, spendplane/gunicorn.conf.py) as a client sees
it: many slow requests at once without a thread each, a stop that finishes what is in flight and
does not wait for idle keep-alive clients."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from metering.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)


def chat(url: str, person, content: str, *, session=None, stream: bool = False) -> requests.Response:
    return (session or requests).post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}]},
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
