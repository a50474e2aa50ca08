"""Resolved API keys held in this process, so a known key costs no cache round trip.

Sound only because every process hears about changes at once: `forget_api_keys` publishes the
changed keys on a Redis channel, a listener thread in each process drops them from its copy and
confirms, and the change returns once every listener has confirmed.
Whenever the listener is not connected (starting, Redis restarting), the copy is emptied and not
used, and lookups go to the shared cache as before. Without Redis (the embedded default, one
process) the shared cache is already in process, and this layer stays off.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from django.conf import settings

logger = logging.getLogger("spendplane.auth")
CHANNEL = "spendplane:apikeys:forget"
EVERY_KEY = "*"
MAX_KEYS = 20_000


class LocalKeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[object, float]] = {}
        self._generation = 0  # bumped by every invalidation: a read that began before it is not stored
        self._listening = False
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, digest: str):
        """The principal held for this key digest, or None."""
        if not self._listening:
            self._start_listener()
            return None
        found = self._entries.get(digest)
        if found is None:
            return None
        principal, expires = found
        if time.monotonic() > expires:
            self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal, *, read_at_generation: int) -> None:
        with self._lock:
            if not self._listening or self._generation != read_at_generation:
                return
            if len(self._entries) >= MAX_KEYS:
                self._entries.clear()
            self._entries[digest] = (principal, time.monotonic() + settings.SPENDPLANE_CACHE_SECONDS)

    def forget(self, digests) -> None:
        with self._lock:
            self._generation += 1
            if EVERY_KEY in digests:
                self._entries.clear()
            for digest in digests:
                self._entries.pop(digest, None)

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._listening = listening

    def _start_listener(self) -> None:
        if not settings.REDIS_URL or (self._listener is not None and self._listener.is_alive()):
            return
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._listener = threading.Thread(target=self._listen, name="apikey-forget-listener", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        import redis

        delay = 0.5
        while settings.REDIS_URL:
            try:
                client = redis.Redis.from_url(settings.REDIS_URL, socket_keepalive=True, health_check_interval=30)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(_channel())
                pubsub.get_message(timeout=5)  # the subscription is confirmed before the copy is used
                self._set_listening(True)
                delay = 0.5
                acks = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0)
                for message in pubsub.listen():
                    if message.get("type") == "message":
                        change_id, _, digests = message["data"].decode().partition("|")
                        self.forget(digests.split(","))
                        acks.pipeline().incr(_ack_key(change_id)).expire(_ack_key(change_id), 60).execute()
            except Exception as exc:
                logger.warning("API key change listener disconnected (%s); keys are read from the cache", exc)
            self._set_listening(False)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


local_keys = LocalKeyCache()


_publisher = None


def _channel() -> str:
    # Channels are server-wide, not per database number: name the database in it.
    from redis.connection import parse_url

    return f"{CHANNEL}:{parse_url(settings.REDIS_URL).get('db', 0)}"


def _ack_key(change_id: str) -> str:
    return f"{_channel()}:ack:{change_id}"


def publish_forget(digests: list[str], *, wait_seconds: float = 1.0) -> None:
    """Drop these keys here and in every other process, and return once each process listening
    has confirmed it (or `wait_seconds` ran out: logged). Raises if Redis cannot be told, so a
    change does not look done while other processes may still hold the old key."""
    global _publisher
    local_keys.forget(digests)
    if not settings.REDIS_URL or not digests:
        return
    import redis

    if _publisher is None or _publisher[0] != settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0)
        _publisher = (settings.REDIS_URL, client)
    client = _publisher[1]
    change_id = uuid.uuid4().hex
    listeners = client.publish(_channel(), f"{change_id}|{','.join(digests)}")
    deadline = time.monotonic() + wait_seconds
    while listeners and int(client.get(_ack_key(change_id)) or 0) < listeners:
        if time.monotonic() > deadline:
            logger.warning("API key change %s: not every process confirmed within %s s", change_id, wait_seconds)
            return
        time.sleep(0.001)
