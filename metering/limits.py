"""Rate limits: requests and tokens per minute, requests in flight, and the loop throttle, all
checked and counted in one atomic step (one Redis round trip, a Lua script) over every scope.

Every counter lives in Redis when REDIS_URL is set, so all processes share one set of limits. The
embedded default keeps them in process, which is exact for its single server process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from spendplane import fastjson
from tenants.models import EVERY_SUBJECT, Scope
from tenants.principal import Principal

logger = logging.getLogger("spendplane.limits")


class LimitsUnavailable(Exception):
    """The shared counter store could not be reached."""


@dataclass(frozen=True)
class LimitRule:
    scope: str
    subject: str
    rpm: int | None
    tpm: int | None
    concurrency: int | None

    @property
    def name(self) -> str:
        return f"{self.scope}:{self.subject}" if self.subject else self.scope


@dataclass
class LimitExceeded(Exception):
    rule_name: str
    kind: str  # requests | tokens | concurrency | loop
    limit: int
    retry_after: int

    def __str__(self) -> str:
        return f"{self.kind} limit of {self.limit} reached for {self.rule_name}"


@dataclass
class Grant:
    """What admission took, so settlement can give it back; plus the figures for the headers."""

    tenant_id: int
    request_id: str
    token_estimate: int
    token_keys: list[str] = field(default_factory=list)
    concurrency_keys: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopRule:
    """The same end user sending the same request more than `max_repeats` times in `window` s."""

    who: str
    digest: str
    max_repeats: int
    window: int


def rules_for(principal: Principal, *, end_user: str, feature: str) -> list[LimitRule]:
    rules = []
    if principal.rpm_limit or principal.tpm_limit or principal.max_concurrency:
        rules.append(LimitRule(Scope.TENANT, "", principal.rpm_limit, principal.tpm_limit, principal.max_concurrency))
    subjects = {Scope.KEY: str(principal.key_id), Scope.END_USER: end_user, Scope.FEATURE: feature}
    for scope, subject in subjects.items():
        if not subject:
            continue
        specs = [s for s in principal.rate_limits if s.scope == scope and s.subject == subject]
        specs = specs or [s for s in principal.rate_limits if s.scope == scope and s.subject == EVERY_SUBJECT]
        for spec in specs:
            rules.append(LimitRule(scope, subject, spec.rpm_limit, spec.tpm_limit, spec.max_concurrency))
    return rules


def loop_rule_for(principal: Principal, *, end_user: str, body: dict) -> LoopRule | None:
    """The loop throttle's fingerprint of this request (an agent stuck in a loop repeats it)."""
    if not principal.loop_max_repeats:
        return None
    who = end_user or f"key:{principal.key_id}"
    fingerprint = fastjson.dumps(
        [body.get("model"), body.get("messages"), body.get("tools"), body.get("system"), body.get("input")],
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(who.encode() + b"\x00" + fingerprint).hexdigest()[:32]
    return LoopRule(who, digest, principal.loop_max_repeats, principal.loop_window_seconds)


def _minute(now: float) -> int:
    return int(now // 60)


def _key(tenant_id: int, rule: LimitRule, kind: str, suffix: str = "") -> str:
    digest = hashlib.sha1(rule.subject.encode(), usedforsecurity=False).hexdigest()[:16]
    return f"sp:{kind}:{tenant_id}:{rule.scope}:{digest}{suffix}"


# ---- tokens per minute and concurrency: one atomic step over every scope ---------------------

_ADMIT_SCRIPT = """
-- KEYS[1]: the loop key ('' for none); then per rule i: requests key, tokens key, concurrency key.
-- ARGV: now_ms, request_id, tokens, slot_ttl_ms, loop_max, loop_window_s,
--       then per rule i: rpm limit, tpm limit, concurrency limit (0 = none).
-- Checks everything first and counts only an admitted request (the loop key always counts).
-- Returns {1, 0, '', requests_left, tokens_left} or {0, i, kind, figure} (i = 0: the loop).
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
if KEYS[1] ~= '' then
  local seen = redis.call('INCR', KEYS[1])
  if seen == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6])) end
  if seen > tonumber(ARGV[5]) then return {0, 0, 'loop', seen} end
end
local n = (#KEYS - 1) / 3
local requests_left, tokens_left = -1, -1
for i = 1, n do
  local base = (i - 1) * 3 + 1
  local rpm = tonumber(ARGV[6 + (i - 1) * 3 + 1])
  local tpm = tonumber(ARGV[6 + (i - 1) * 3 + 2])
  local conc = tonumber(ARGV[6 + (i - 1) * 3 + 3])
  if rpm > 0 then
    local sent = tonumber(redis.call('GET', KEYS[base + 1]) or '0')
    if sent + 1 > rpm then return {0, i, 'requests', sent} end
    if requests_left < 0 or rpm - sent - 1 < requests_left then requests_left = rpm - sent - 1 end
  end
  if tpm > 0 then
    local used = tonumber(redis.call('GET', KEYS[base + 2]) or '0')
    if used + tokens > tpm then return {0, i, 'tokens', used} end
    if tokens_left < 0 or tpm - used - tokens < tokens_left then tokens_left = tpm - used - tokens end
  end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[base + 3], '-inf', now)
    local inflight = redis.call('ZCARD', KEYS[base + 3])
    if inflight >= conc then return {0, i, 'concurrency', inflight} end
  end
end
for i = 1, n do
  local base = (i - 1) * 3 + 1
  if tonumber(ARGV[6 + (i - 1) * 3 + 1]) > 0 then
    redis.call('INCR', KEYS[base + 1])
    redis.call('EXPIRE', KEYS[base + 1], 120)
  end
  if tonumber(ARGV[6 + (i - 1) * 3 + 2]) > 0 then
    redis.call('INCRBY', KEYS[base + 2], tokens)
    redis.call('EXPIRE', KEYS[base + 2], 120)
  end
  if tonumber(ARGV[6 + (i - 1) * 3 + 3]) > 0 then
    redis.call('ZADD', KEYS[base + 3], now + ttl, ARGV[2])
    redis.call('PEXPIRE', KEYS[base + 3], ttl)
  end
end
return {1, 0, '', requests_left, tokens_left}
"""

_RELEASE_SCRIPT = """
-- KEYS: tokens keys then concurrency keys (counts in ARGV[1]); ARGV[2]: request id; ARGV[3]: token correction.
local ntok = tonumber(ARGV[1])
for i = 1, #KEYS do
  if i <= ntok then
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], tonumber(ARGV[3])) end
  else
    redis.call('ZREM', KEYS[i], ARGV[2])
  end
end
return 1
"""


def _checked_connection_class():
    """redis-py's connection, whose pool's check on each connection it hands out skips gevent's
    poll (spendplane/socket_checks.py)."""
    import redis

    from spendplane.socket_checks import readable_now

    class Connection(redis.Connection):
        def can_read(self, timeout: float = 0) -> bool:
            # hiredis's reader (requirements.txt) holds what was read but not yet parsed; with
            # nothing there and nothing on the socket there is nothing to read.
            reader = getattr(self._parser, "_reader", None)
            idle = timeout == 0 and self._sock is not None and reader is not None and not reader.has_data()
            if idle and not readable_now(self._sock):
                return False
            return super().can_read(timeout)

    return Connection


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis

        self.errors = (redis.RedisError, OSError)
        self.no_script = redis.exceptions.NoScriptError
        # Threads share a few connections and wait for one (a script takes well under a
        # millisecond), instead of failing past redis-py's 100 once hundreds of streams are open.
        # A refused Redis fails within a second; a busy one is waited for, not reported as down.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=settings.SPENDPLANE_REDIS_MAX_CONNECTIONS,
            timeout=5.0,
            socket_timeout=5.0,
            socket_connect_timeout=1.0,
            connection_class=_checked_connection_class(),
        )
        self.client = redis.Redis(connection_pool=pool)
        self.admit_script = self.client.register_script(_ADMIT_SCRIPT)
        self.release_script = self.client.register_script(_RELEASE_SCRIPT)

    def admit(self, keys: list[str], args: list) -> list:
        """EVALSHA as a plain command (redis-py's Script wrapper and its deprecation shims cost
        more than the call); a NOSCRIPT reply loads the script and asks again."""
        try:
            try:
                return self.client.execute_command("EVALSHA", self.admit_script.sha, len(keys), *keys, *args)
            except self.no_script:
                self.client.script_load(_ADMIT_SCRIPT)
                return self.client.execute_command("EVALSHA", self.admit_script.sha, len(keys), *keys, *args)
        except self.errors as exc:
            raise LimitsUnavailable(str(exc)) from exc

    def admit_begin(self, keys: list[str], args: list):
        """Send the admission script on a connection of its own and return what reads its reply.
        A NOSCRIPT reply or a connection that broke after it was handed out is left to `admit`;
        a reply lost after the script ran is asked for again, so that request counts twice (as
        redis-py's own retry would), never not at all."""
        pool = self.client.connection_pool
        try:
            conn = pool.get_connection()  # connecting retries as redis-py's commands do
        except self.errors as exc:
            unavailable = str(exc)

            def refused() -> list:
                raise LimitsUnavailable(unavailable)

            return refused
        try:
            conn.send_command("EVALSHA", self.admit_script.sha, len(keys), *keys, *args)
        except BaseException as exc:
            conn.disconnect()
            pool.release(conn)
            if not isinstance(exc, self.errors):
                raise
            return lambda: self.admit(keys, args)

        def answer() -> list:
            try:
                reply = conn.read_response()
            except self.no_script:
                reply = None
            except self.errors:
                conn.disconnect()
                reply = None
            except BaseException:
                conn.disconnect()  # its reply unread: the connection cannot be used again
                raise
            finally:
                pool.release(conn)
            return self.admit(keys, args) if reply is None else reply

        return answer

    def release_many(self, releases: list[tuple[list[str], list[str], str, int]]) -> None:
        """Free slots and correct token windows for one request or many, in one pipeline of EVALSHA.
        (redis-py's own script pipelining asks SCRIPT EXISTS first, a second round trip per batch.)
        A release whose script Redis does not have (flushed, or a new server) is sent again once
        the script is loaded: a NOSCRIPT reply means that command did nothing."""
        commands = [
            (token_keys + concurrency_keys, [len(token_keys), request_id, correction])
            for token_keys, concurrency_keys, request_id, correction in releases
        ]
        try:
            for _attempt in range(2):
                pipe = self.client.pipeline(transaction=False)
                for keys, args in commands:
                    pipe.evalsha(self.release_script.sha, len(keys), *keys, *args)
                results = pipe.execute(raise_on_error=False)
                commands = [c for c, r in zip(commands, results, strict=True) if isinstance(r, self.no_script)]
                if not commands:
                    return
                self.client.script_load(_RELEASE_SCRIPT)
            logger.warning("could not release limits of %d requests: script not loaded", len(commands))
        except self.errors as exc:
            logger.warning("could not release limits of %d requests: %s", len(releases), exc)


class LocalCounters:
    """The same semantics in one process, for the embedded default."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self.slots: dict[str, dict[str, float]] = {}

    def _count(self, key: str, now: float) -> int:
        count, expires = self.counts.get(key, (0, 0.0))
        return count if expires > now else 0

    def _add(self, key: str, amount: int, now: float, ttl: float) -> int:
        count, expires = self.counts.get(key, (0, 0.0))
        if expires <= now:
            count, expires = 0, now + ttl
        self.counts[key] = (count + amount, expires)
        return count + amount

    def admit(self, keys: list[str], args: list) -> list:
        now_ms, request_id, tokens, ttl_ms = float(args[0]), args[1], int(args[2]), float(args[3])
        now = now_ms / 1000
        with self.lock:
            if len(self.counts) > 10_000:
                self.counts = {k: v for k, v in self.counts.items() if v[1] > now}
            if keys[0] and self._add(keys[0], 1, now, float(args[5])) > int(args[4]):
                return [0, 0, b"loop", self._count(keys[0], now)]
            requests_left = tokens_left = -1
            rules = [
                (keys[1 + i * 3 : 4 + i * 3], [int(a) for a in args[6 + i * 3 : 9 + i * 3]])
                for i in range(len(keys) // 3)
            ]
            for i, ((rpm_key, tpm_key, slot_key), (rpm, tpm, conc)) in enumerate(rules, start=1):
                if rpm:
                    sent = self._count(rpm_key, now)
                    if sent + 1 > rpm:
                        return [0, i, b"requests", sent]
                    requests_left = rpm - sent - 1 if requests_left < 0 else min(requests_left, rpm - sent - 1)
                if tpm:
                    used = self._count(tpm_key, now)
                    if used + tokens > tpm:
                        return [0, i, b"tokens", used]
                    tokens_left = tpm - used - tokens if tokens_left < 0 else min(tokens_left, tpm - used - tokens)
                slots = self.slots.setdefault(slot_key, {})
                for rid in [r for r, expiry in slots.items() if expiry <= now_ms]:
                    del slots[rid]
                if conc and len(slots) >= conc:
                    return [0, i, b"concurrency", len(slots)]
            for (rpm_key, tpm_key, slot_key), (rpm, tpm, conc) in rules:
                if rpm:
                    self._add(rpm_key, 1, now, 120)
                if tpm:
                    self._add(tpm_key, tokens, now, 120)
                if conc:
                    self.slots.setdefault(slot_key, {})[request_id] = now_ms + ttl_ms
        return [1, 0, b"", requests_left, tokens_left]

    def admit_begin(self, keys: list[str], args: list):
        reply = self.admit(keys, args)
        return lambda: reply

    def release_many(self, releases: list[tuple[list[str], list[str], str, int]]) -> None:
        now = time.time()
        with self.lock:
            for token_keys, concurrency_keys, request_id, correction in releases:
                for key in token_keys:
                    count, expires = self.counts.get(key, (0, 0.0))
                    if expires > now:
                        self.counts[key] = (count + correction, expires)
                for key in concurrency_keys:
                    self.slots.get(key, {}).pop(request_id, None)


_counters = None
_counters_lock = threading.Lock()


def counters():
    global _counters
    if _counters is None:
        with _counters_lock:
            if _counters is None:
                _counters = RedisCounters(settings.REDIS_URL) if settings.REDIS_URL else LocalCounters()
    return _counters


def reset_counters() -> None:
    """Forget the counter client (tests switch REDIS_URL) and the tenants refused lately."""
    global _counters
    _counters = None
    _refused_until.clear()


# ---- admission --------------------------------------------------------------------------------


def limits_begin(
    *, principal: Principal, request_id: str, rules: list[LimitRule], token_estimate: int, loop: LoopRule | None
) -> PendingAdmission:
    """Count this request against the loop throttle and every rule, in one round trip to the
    counter store whatever the number of rules. The check is sent now and its answer read by
    `result()` (the grant, or LimitExceeded naming the first rule broken), so the caller can do
    other work while the store runs it."""
    grant = Grant(tenant_id=principal.tenant_id, request_id=request_id, token_estimate=token_estimate)
    metered = [r for r in rules if r.rpm or r.tpm or r.concurrency]
    if not metered and loop is None:
        return PendingAdmission(grant)
    now = time.time()
    minute = f":{_minute(now)}"
    loop_key = f"loop:{principal.tenant_id}:{loop.digest}" if loop else ""
    keys = [loop_key]
    args = [
        int(now * 1000),
        request_id,
        token_estimate,
        settings.SPENDPLANE_RESERVATION_SECONDS * 1000,
        loop.max_repeats if loop else 0,
        loop.window if loop else 0,
    ]
    for rule in metered:
        keys += [
            _key(principal.tenant_id, rule, "rpm", minute),
            _key(principal.tenant_id, rule, "tpm", minute),
            _key(principal.tenant_id, rule, "inflight"),
        ]
        args += [rule.rpm or 0, rule.tpm or 0, rule.concurrency or 0]
    return PendingAdmission(grant, counters().admit_begin(keys, args), metered=metered, loop=loop, now=now, keys=keys)


class PendingAdmission:
    """A limits check on its way to the counter store; `result()` reads the answer, once."""

    def __init__(self, grant: Grant, answer=None, *, metered=(), loop=None, now=0.0, keys=()) -> None:
        self.grant = grant
        self.answer = answer  # reads the store's reply; None when no rule counts this request
        self.metered = metered
        self.loop = loop
        self.now = now
        self.keys = keys

    def result(self) -> Grant:
        """The grant, or LimitExceeded naming the first rule broken, or LimitsUnavailable."""
        answer, self.answer = self.answer, None
        if answer is None:
            return self.grant
        ok, index, kind, *figures = answer()
        if not ok:
            # Raised, not kept in a local: the frame would hold its own exception (a reference cycle).
            raise self._refusal(kind.decode() if isinstance(kind, bytes) else kind, index)
        requests_left, tokens_left = figures
        metered, keys, grant = self.metered, self.keys, self.grant
        grant.token_keys = [keys[2 + i * 3] for i, rule in enumerate(metered) if rule.tpm]
        grant.concurrency_keys = [keys[3 + i * 3] for i, rule in enumerate(metered) if rule.concurrency]
        request_rules = [r for r in metered if r.rpm]
        if request_rules:
            grant.headers["x-ratelimit-limit-requests"] = str(min(r.rpm for r in request_rules))
            grant.headers["x-ratelimit-remaining-requests"] = str(max(int(requests_left), 0))
        token_rules = [r for r in metered if r.tpm]
        if token_rules:
            grant.headers["x-ratelimit-limit-tokens"] = str(min(r.tpm for r in token_rules))
            grant.headers["x-ratelimit-remaining-tokens"] = str(max(int(tokens_left), 0))
        return grant

    def _refusal(self, kind: str, index: int) -> LimitExceeded:
        """The refusal of the store's answer, noted against the tenant."""
        if kind == "loop":
            loop = self.loop
            refusal = LimitExceeded(f"end_user:{loop.who}", "loop", loop.max_repeats, loop.window)
        else:
            rule = self.metered[index - 1]
            until_next_minute = max(int(60 - self.now % 60), 1)
            if kind == "requests":
                refusal = LimitExceeded(rule.name, "requests", rule.rpm, until_next_minute)
            elif kind == "tokens":
                refusal = LimitExceeded(rule.name, "tokens", rule.tpm, until_next_minute)
            else:
                refusal = LimitExceeded(rule.name, "concurrency", rule.concurrency, 1)
        _note_refused(self.grant.tenant_id, refusal.retry_after)
        return refusal


# Tenants a limit refused lately, in this process: tenant id -> until when (monotonic seconds).
_refused_until: dict[int, float] = {}


def _note_refused(tenant_id: int, retry_after: int) -> None:
    if len(_refused_until) > 10_000:
        _refused_until.clear()
    _refused_until[tenant_id] = time.monotonic() + retry_after


def recently_refused(tenant_id: int) -> bool:
    """Whether a limit refused one of this tenant's requests here within its Retry-After: while it
    did, the gateway waits for the limits' answer before doing any other admission work."""
    until = _refused_until.get(tenant_id)
    return until is not None and until > time.monotonic()


def _release_args(grant: Grant | None, actual_tokens: int) -> tuple | None:
    """One request's entry for a store's `release_many`, or None when it holds nothing to release."""
    if grant is None or not (grant.token_keys or grant.concurrency_keys):
        return None
    return grant.token_keys, grant.concurrency_keys, grant.request_id, actual_tokens - grant.token_estimate


def limits_release(grant: Grant | None, *, actual_tokens: int) -> None:
    """Free the in-flight slots and correct the token window from the estimate to the actual count."""
    limits_release_many([(grant, actual_tokens)])


def limits_release_many(releases: Sequence[tuple[Grant | None, int]]) -> None:
    """`limits_release` for many requests (grant, actual tokens): on Redis, one round trip for the
    whole batch."""
    work = [args for grant, actual in releases if (args := _release_args(grant, actual)) is not None]
    if work:
        counters().release_many(work)
