"""The provider connection pool's reuse check (spendplane/upstreams.py, socket_checks.py): a live
keep-alive connection is reused, one the provider closed is replaced before a request is sent on
it (the gateway never retries on its own, so a dead connection would cost the client an error)."""

from __future__ import annotations

import json
import threading
import time

from metering.routing import Upstream
from spendplane import upstreams

from .local_provider import LocalProvider, upstream

REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"


class ClosingServer(LocalProvider):
    """Answers one request per connection as if keeping it alive, then closes it."""

    def handle(self, conn) -> None:
        with conn:
            data = b""
            while not data.endswith(b"\r\n\r\n{}"):  # the headers and the 2-byte body
                data += conn.recv(65536)
            conn.sendall(REPLY)


def post(target: Upstream, body: bytes = b"{}"):
    url = f"{target.openai_base}/chat/completions"
    response = upstreams.post(target, url, body=body, headers={"Content-Type": "application/json"}, stream=False)
    response.release()
    return response


def test_a_live_keep_alive_connection_is_reused(mock_upstream):
    target = upstream(mock_upstream.url + "/v1")
    pool, _start = upstreams._route(target, f"{target.openai_base}/chat/completions")
    before = pool.num_connections
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    for _ in range(5):
        assert post(target, body).status == 200
    assert pool.num_connections - before <= 1
    assert any(isinstance(conn, upstreams._HTTPConnection) for conn in pool.pool.queue)
    # requests' own calls on the session (not the proxy's fast path) share the pool and its check
    assert upstreams.session_for(target).post(f"{target.openai_base}/chat/completions", data=body).ok
    assert pool.num_connections - before <= 1


def test_a_connection_the_provider_closed_is_replaced_not_used():
    server = ClosingServer()
    target = upstream(server.url)
    try:
        statuses = []
        for _ in range(4):
            statuses.append(post(target).status)
            time.sleep(0.05)  # the close reaches this side, as a provider's idle close would have
    finally:
        server.listener.close()
    assert statuses == [200] * 4
    assert server.accepted == 4


class SlowKeepAliveServer(LocalProvider):
    """Keeps every connection open and answers each request after a short delay."""

    def handle(self, conn) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n{}" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                data = data.split(b"\r\n\r\n{}", 1)[1]
                time.sleep(0.2)
                conn.sendall(REPLY)


def test_the_pool_keeps_as_many_connections_as_requests_were_in_flight(settings):
    settings.SPENDPLANE_UPSTREAM_POOL_SIZE = 6
    server = SlowKeepAliveServer()
    target = upstream(server.url)

    def burst() -> list[int]:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(post(target).status)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        return results

    try:
        assert burst() == [200] * 6
        assert server.accepted == 6
        assert burst() == [200] * 6
        assert server.accepted == 6, "a second burst of the same size reconnected"
    finally:
        server.listener.close()
