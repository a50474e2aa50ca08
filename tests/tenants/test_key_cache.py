"""Each process keeps the keys it resolved, and drops them the moment any process changes them."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings

from tenants import auth, key_cache
from tenants.key_cache import LocalKeyCache, local_keys
from tenants.models import hash_api_key

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the change channel)")


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def listening():
    local_keys.get("warm-up")  # starts the listener
    wait_until(lambda: local_keys._listening)
    return local_keys


@needs_redis
def test_a_known_key_is_answered_in_process_without_a_cache_round_trip(alice, listening, monkeypatch):
    first, _ = auth.key_lookup(alice.raw_key, client_meta={"REMOTE_ADDR": "10.0.0.1"})
    assert first.key_id == alice.key.id

    def no_round_trip(*args, **kwargs):
        raise AssertionError("the shared cache was asked")

    monkeypatch.setattr(auth.cache, "get_many", no_round_trip)
    again, blocked = auth.key_lookup(alice.raw_key, client_meta={"REMOTE_ADDR": "10.0.0.1"})
    assert again == first and blocked is None


@needs_redis
def test_a_change_announced_by_another_process_drops_the_copy_and_is_confirmed(alice, listening):
    auth.key_lookup(alice.raw_key)
    digest = hash_api_key(alice.raw_key)
    assert listening.get(digest) is not None

    other_process = redis.Redis.from_url(settings.REDIS_URL)
    receivers = other_process.publish(key_cache._channel(), f"change-1|{digest}")
    assert receivers >= 1
    wait_until(lambda: listening.get(digest) is None, timeout=1.0)
    wait_until(lambda: int(other_process.get(key_cache._ack_key("change-1")) or 0) == receivers, timeout=1.0)


@needs_redis
def test_revoking_a_key_drops_this_process_copy_at_once(alice, listening):
    auth.key_lookup(alice.raw_key)
    digest = hash_api_key(alice.raw_key)
    alice.key.revoked_at = alice.key.created_at
    alice.key.save()
    assert listening.get(digest) is None
    principal, _ = auth.key_lookup(alice.raw_key)
    assert principal.revoked
    assert listening.get(digest) is None, "a revoked key is never held in process"


@needs_redis
def test_a_change_returns_only_once_every_listener_has_confirmed_it(listening, monkeypatch):
    monkeypatch.setattr(key_cache.uuid, "uuid4", lambda: type("Id", (), {"hex": "change-2"})())
    real_forget = listening.forget

    def slow_forget(digests):  # a busy process: its listener confirms 0.2 s after the message
        time.sleep(0.2)
        real_forget(digests)

    monkeypatch.setattr(listening, "forget", slow_forget)
    key_cache.publish_forget(["some-digest"])
    confirmed = redis.Redis.from_url(settings.REDIS_URL).get(key_cache._ack_key("change-2"))
    assert int(confirmed or 0) >= 1  # read straight after the call returned: no waiting here


def test_nothing_is_kept_while_no_listener_is_connected(settings):
    settings.REDIS_URL = ""
    cache = LocalKeyCache()
    cache.put("digest", object(), read_at_generation=cache.generation)
    assert cache.get("digest") is None


def test_a_read_that_began_before_a_change_is_not_kept():
    cache = LocalKeyCache()
    cache._set_listening(True)
    began_at = cache.generation
    cache.forget(["some-other-key"])  # any change while the read was in flight
    cache.put("digest", "stale principal", read_at_generation=began_at)
    assert cache.get("digest") is None
    cache.put("digest", "fresh principal", read_at_generation=cache.generation)
    assert cache.get("digest") == "fresh principal"
    cache.forget([key_cache.EVERY_KEY])
    assert cache.get("digest") is None


def test_a_copy_expires_with_the_shared_cache(settings, monkeypatch):
    settings.SPENDPLANE_CACHE_SECONDS = 30
    cache = LocalKeyCache()
    cache._set_listening(True)
    cache.put("digest", "principal", read_at_generation=cache.generation)
    now = time.monotonic()
    monkeypatch.setattr(key_cache.time, "monotonic", lambda: now + 31)
    assert cache.get("digest") is None
