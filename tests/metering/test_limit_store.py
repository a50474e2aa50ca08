"""The Redis limit store's pipelined release, against a real Redis."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings

from metering import limits

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


@pytest.fixture
def store():
    store = limits.RedisCounters(settings.REDIS_URL)
    yield store
    store.client.close()


def held(store, tag: str) -> tuple[str, str]:
    tokens_key, slots_key = f"sp:test:{tag}:tpm", f"sp:test:{tag}:inflight"
    store.client.set(tokens_key, 100, ex=60)
    later = int(time.time() * 1000) + 60_000
    store.client.zadd(slots_key, {"r1": later, "r2": later, "r3": later})
    return tokens_key, slots_key


@pytest.mark.parametrize("flushed", [False, True], ids=["script-loaded", "script-flushed"])
def test_a_pipelined_release_frees_slots_and_corrects_tokens_once(store, flushed):
    tokens_key, slots_key = held(store, uuid.uuid4().hex)
    store.release_many([([], [slots_key], "warm-up", 0)])  # the script is loaded now
    if flushed:
        store.client.script_flush()
    store.release_many([([tokens_key], [slots_key], "r1", -30), ([tokens_key], [slots_key], "r2", 5)])
    assert int(store.client.get(tokens_key)) == 75
    assert store.client.zrange(slots_key, 0, -1) == [b"r3"]


def test_a_pipelined_release_asks_redis_nothing_but_the_releases(store):
    tokens_key, slots_key = held(store, uuid.uuid4().hex)
    store.release_many([([], [slots_key], "warm-up", 0)])
    before = _calls(store, "script|exists")
    store.release_many([([tokens_key], [slots_key], "r1", -30)])
    assert _calls(store, "script|exists") == before
    assert store.client.zrange(slots_key, 0, -1) == [b"r2", b"r3"]


def _calls(store, command: str) -> int:
    stats = store.client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_admission_reloads_a_flushed_script_and_counts_once(store):
    tag = uuid.uuid4().hex
    keys = ["", f"sp:test:{tag}:rpm", f"sp:test:{tag}:tpm", f"sp:test:{tag}:inflight"]

    def admit(request_id: str) -> list:
        now = int(time.time() * 1000)
        return store.admit(keys, [now, request_id, 40, 60_000, 0, 0, 10, 1000, 5])

    assert admit("r1")[0] == 1
    store.client.script_flush()
    assert admit("r2")[0] == 1
    assert int(store.client.get(keys[1])) == 2  # requests
    assert int(store.client.get(keys[2])) == 80  # tokens
    assert store.client.zcard(keys[3]) == 2  # in flight


def _admission(store, tag: str):
    keys = ["", f"sp:test:{tag}:rpm", f"sp:test:{tag}:tpm", f"sp:test:{tag}:inflight"]

    def sent_ahead(request_id: str):
        now = int(time.time() * 1000)
        return store.admit_begin(keys, [now, request_id, 40, 60_000, 0, 0, 10, 1000, 5])

    return keys, sent_ahead


def test_an_admission_sent_ahead_reloads_a_flushed_script_and_counts_once(store):
    keys, sent_ahead = _admission(store, uuid.uuid4().hex)
    assert sent_ahead("r1")()[0] == 1
    store.client.script_flush()
    answer = sent_ahead("r2")
    assert answer()[0] == 1
    assert (int(store.client.get(keys[1])), int(store.client.get(keys[2])), store.client.zcard(keys[3])) == (2, 80, 2)
    pool = store.client.connection_pool
    assert pool.pool.qsize() == pool.max_connections  # every connection went back


def test_an_admission_sent_ahead_replaces_a_pooled_connection_redis_dropped_and_counts_once(store):
    import redis

    keys, sent_ahead = _admission(store, uuid.uuid4().hex)
    assert sent_ahead("r1")()[0] == 1
    killer = redis.Redis.from_url(settings.REDIS_URL)
    try:
        killer.client_kill_filter(_id=store.client.client_id())  # the pool's only connection
    finally:
        killer.close()
    assert sent_ahead("r2")()[0] == 1
    assert (int(store.client.get(keys[1])), store.client.zcard(keys[3])) == (2, 2)


def test_an_admission_sent_ahead_to_a_dead_store_is_unavailable():
    dead = limits.RedisCounters("redis://127.0.0.1:1/0")
    answer = dead.admit_begin(["", "k:rpm", "k:tpm", "k:inflight"], [0, "r1", 1, 1000, 0, 0, 1, 0, 0])
    with pytest.raises(limits.LimitsUnavailable):
        answer()


def test_an_admission_whose_reply_is_lost_is_asked_again_and_never_goes_uncounted(store):
    """The script ran, then its reply was lost: asked again, the request counts twice (as
    redis-py's own retry would), and the connection that lost it is dropped."""
    import redis

    keys, sent_ahead = _admission(store, uuid.uuid4().hex)
    assert sent_ahead("r1")()[0] == 1
    pool = store.client.connection_pool
    conn = pool.get_connection()
    pool.release(conn)

    dropped = []

    def lost(*args, **kwargs):
        conn._sock.recv(65536)  # the reply arrives, and is lost
        del conn.read_response  # once
        dropped.append(conn._sock)
        raise redis.ConnectionError("connection reset")

    conn.read_response = lost
    assert sent_ahead("r2")()[0] == 1
    assert int(store.client.get(keys[1])) == 3  # r1, r2 and r2 asked again
    assert store.client.zrange(keys[3], 0, -1) == [b"r1", b"r2"]  # one slot per request, whatever the count
    assert len(dropped) == 1 and dropped[0].fileno() == -1  # the socket that lost it was closed


def test_an_interruption_while_sending_an_admission_propagates_and_returns_the_connection(store):
    """Only the store's own errors fall back to asking again; a timeout of the caller's (gevent's
    Timeout is a BaseException) or an interrupt goes on up, the connection back in the pool."""

    class Interrupted(BaseException):
        pass

    _keys, sent_ahead = _admission(store, uuid.uuid4().hex)
    assert sent_ahead("r1")()[0] == 1
    pool = store.client.connection_pool
    conn = pool.get_connection()
    pool.release(conn)

    def interrupted(*args, **kwargs):
        del conn.send_command
        raise Interrupted

    conn.send_command = interrupted
    with pytest.raises(Interrupted):
        sent_ahead("r2")
    assert pool.pool.qsize() == pool.max_connections
