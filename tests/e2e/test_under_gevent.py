"""Clients in a process patched the way the gevent worker patches itself.

psycopg (which notices gevent's patching and waits through gevent): statements cooperate, large
ones are written whole, its timeout holds and a connection the server ends raises instead of
hanging. The limit store's Redis connections (metering/limits.py): the pool's check on each
connection it hands out, run without gevent's poll, still tells idle from unread from closed. A
socket's `sendall` with the worker's one-send-first path: small and large payloads arrive whole
and in order, its timeout holds, and TLS sockets still encrypt."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from tests.e2e.conftest import ROOT, _database_url

# What gunicorn's gevent worker does before it loads the app (its patch step), then the script.
WORKER_PATCHING = """
from spendplane.gevent_worker import GeventWorker
worker = object.__new__(GeventWorker)
worker.sockets = []
worker.patch()
"""

PSYCOPG_SCRIPT = r"""
import json, sys, time

import gevent, psycopg, psycopg.waiting
from psycopg import errors, generators

url = sys.argv[1]
seen = {"wait": psycopg.waiting.wait.__name__}
conns = [psycopg.connect(url, autocommit=True) for _ in range(12)]

started = time.monotonic()
sleepers = [gevent.spawn(lambda c, i: c.execute("select pg_sleep(0.3), %s::int", (i,)).fetchone()[1], c, i)
            for i, c in enumerate(conns[:10])]
gevent.joinall(sleepers, raise_error=True)
seen["values"] = [g.value for g in sleepers]
seen["slept_seconds"] = time.monotonic() - started

big = "é" * (4 << 20)  # 8 MB on the wire: more than the socket takes at once, so the wait is for writing
seen["big_length"] = conns[0].execute("select length(%s::text)", (big,)).fetchone()[0]

slow = conns[10]
slow.pgconn.send_query(b"select pg_sleep(3)")
started = time.monotonic()
try:
    slow.wait(generators.execute(slow.pgconn), timeout=0.3)
except errors._WaitTimeout:
    seen["timed_out_after"] = time.monotonic() - started

victim = conns[11]
waiting = gevent.spawn(victim.execute, "select pg_sleep(10)")
gevent.sleep(0.3)
conns[1].execute("select pg_terminate_backend(%s)", (victim.info.backend_pid,))
waiting.join(5)
seen["ended_by_server"] = waiting.ready() and isinstance(waiting.exception, psycopg.OperationalError)
print(json.dumps(seen))
"""

REDIS_SCRIPT = r"""
import json, sys

import django, gevent, redis
django.setup()
from metering.limits import RedisCounters

counters = RedisCounters(sys.argv[1])
pool = counters.client.connection_pool
seen = {"class": pool.connection_class.__module__ + "." + pool.connection_class.__qualname__}
conn = pool.get_connection()
conn.send_command("CLIENT", "ID")
client_id = conn.read_response()
seen["idle"] = conn.can_read()
conn.send_command("PING")
gevent.sleep(0.2)
seen["reply_waiting"] = conn.can_read()
seen["reply"] = conn.read_response()
seen["read_all"] = conn.can_read()
killer = redis.Redis.from_url(sys.argv[1])
killer.execute_command("CLIENT", "KILL", "ID", client_id)
gevent.sleep(0.2)
try:
    seen["closed"] = conn.can_read()
except redis.ConnectionError:
    seen["closed"] = "ConnectionError"
pool.release(conn)
seen["pong_after"] = counters.client.ping()
print(json.dumps(seen, default=str))
"""

SENDALL_SCRIPT = r"""
import json, socket, ssl, tempfile, time

import gevent, gevent.socket

from tests.tls import tls_server_context

seen = {"one_send_first": getattr(gevent.socket.socket.sendall, "sends_once_first", False)}

writer, reader = socket.socketpair()
writer.sendall(b"x" * 1000)
seen["small"] = len(reader.recv(4096))

payload = bytes(range(256)) * 40_000  # 10 MB: far more than one send takes
def read_slowly(sock, size):
    got = bytearray()
    while len(got) < size:
        gevent.sleep(0.001)
        got += sock.recv(1 << 16)
    return bytes(got)
receiving = gevent.spawn(read_slowly, reader, len(payload))
writer.sendall(payload)
receiving.join(20)
seen["large_whole_and_in_order"] = receiving.value == payload
seen["memoryview"] = (writer.sendall(memoryview(b"abc")), reader.recv(10))[1].decode()

stuck, _never_read = socket.socketpair()
stuck.settimeout(0.3)
started = time.monotonic()
try:
    stuck.sendall(b"y" * (64 << 20))
except socket.timeout:
    seen["timed_out_after"] = time.monotonic() - started

server_context, _cert_path = tls_server_context(tempfile.mkdtemp())
listener = socket.create_server(("127.0.0.1", 0))
def serve_tls():
    conn, _ = listener.accept()
    with server_context.wrap_socket(conn, server_side=True) as tls:
        return read_slowly(tls, len(payload) + 5)
served = gevent.spawn(serve_tls)
client_context = ssl.create_default_context()
client_context.check_hostname = False
client_context.verify_mode = ssl.CERT_NONE
with client_context.wrap_socket(socket.create_connection(listener.getsockname())) as tls:
    tls.sendall(b"hello")
    tls.sendall(payload)
    served.join(20)
seen["tls_decrypts"] = served.value == b"hello" + payload
print(json.dumps(seen))
"""


TLS_STALL_SCRIPT = r"""
import json, os, socket, ssl, tempfile, time

import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")
django.setup()
import gevent

from spendplane import upstreams
from tests.proxy.local_provider import upstream
from tests.tls import tls_server_context

server_context, cert_path = tls_server_context(tempfile.mkdtemp())

listener = socket.create_server(("127.0.0.1", 0))
def serve():
    conn, _ = listener.accept()
    tls = server_context.wrap_socket(conn, server_side=True)
    data = b""
    while not data.endswith(b"\r\n\r\n{}"):
        data += tls.recv(65536)
    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nfirst\r\n")
    gevent.sleep(30)  # then nothing: a provider stalled mid-stream
gevent.spawn(serve)

url = "https://127.0.0.1:%d/v1" % listener.getsockname()[1]
target = upstream(url, read_timeout=0.5)
upstreams.session_for(target).get_adapter(url).poolmanager.connection_pool_kw["ca_certs"] = cert_path
response = upstreams.post(target, url + "/chat/completions", body=b"{}",
                          headers={"Content-Type": "application/json"}, stream=True)
watched = response._watched
seen = {"tls": isinstance(response.connection.sock, ssl.SSLSocket), "watched": watched is not None}
pieces, started = [], time.monotonic()
try:
    for piece in response.stream():
        pieces.append(piece.decode())
except Exception as exc:
    seen["error"] = type(exc).__name__
seen["pieces"] = pieces
seen["ended_after"] = time.monotonic() - started
seen["expired"] = watched.expired
print(json.dumps(seen))
"""


def test_a_stalled_tls_stream_is_cut_by_the_watcher_as_a_read_timeout():
    """The watcher ends a stalled stream by shutting its socket down (tests/e2e/test_server_model.py
    covers plain TCP, where the read then sees the end of the stream). Under TLS the pending read
    fails in gevent's own way instead; the client reads both as the read timeout they are, which
    the relay turns into the stream's error event and a 502 row."""
    seen = run_patched(TLS_STALL_SCRIPT, "")
    assert seen["tls"] is True and seen["watched"] is True
    assert seen["pieces"] == ["first"]
    assert seen["expired"] is True
    assert seen.get("error") == "ReadTimeoutError"
    assert seen["ended_after"] < 5


def test_sendall_sends_once_first_and_keeps_order_timeouts_and_tls():
    seen = run_patched(SENDALL_SCRIPT, "")
    assert seen["one_send_first"] is True
    assert seen["small"] == 1000
    assert seen["large_whole_and_in_order"] is True
    assert seen["memoryview"] == "abc"
    assert 0.25 <= seen.get("timed_out_after", -1) < 2.0
    assert seen["tls_decrypts"] is True, "a TLS socket's bytes went out unencrypted or out of order"


def run_patched(script: str, url: str) -> dict:
    program = WORKER_PATCHING + script
    done = subprocess.run([sys.executable, "-c", program, url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg waits only on PostgreSQL")
def test_psycopg_cooperates_in_the_gevent_worker():
    seen = run_patched(PSYCOPG_SCRIPT, _database_url())
    assert seen["wait"] != "wait_c", "psycopg's C wait blocks the whole worker under gevent"
    assert seen["values"] == list(range(10))
    assert seen["slept_seconds"] < 1.5, "ten 0.3 s statements ran one after another"
    assert seen["big_length"] == 4 << 20
    assert 0.25 <= seen.get("timed_out_after", -1) < 1.0
    assert seen["ended_by_server"] is True, "a connection the server ended did not raise OperationalError"


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_the_limit_stores_connection_check_skips_gevents_poll_and_still_sees_data_and_closes():
    seen = run_patched(REDIS_SCRIPT, settings.REDIS_URL)
    assert seen["class"] == "metering.limits._checked_connection_class.<locals>.Connection"
    assert seen["idle"] is False
    assert seen["reply_waiting"] is True
    assert seen["reply"] in ("PONG", "b'PONG'")
    assert seen["read_all"] is False
    assert seen["closed"] in (True, "ConnectionError")  # either way the pool does not reuse it as is
    assert seen["pong_after"] is True
