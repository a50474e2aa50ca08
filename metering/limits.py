"""Rate limits: requests per minute (django-ratelimit), tokens per minute and in-flight requests
(one Redis script for all scopes), and the loop throttle.

Every counter lives in Redis when REDIS_URL is set, so all processes share one set of limits. The
embedded default keeps them in process, which is exact for its single server process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django_ratelimit.core import get_usage

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


def _minute(now: float) -> int:
    return int(now // 60)


def _key(tenant_id: int, rule: LimitRule, kind: str, suffix: str = "") -> str:
    digest = hashlib.sha1(rule.subject.encode(), usedforsecurity=False).hexdigest()[:16]
    return f"sp:{kind}:{tenant_id}:{rule.scope}:{digest}{suffix}"


# ---- tokens per minute and concurrency: one atomic step over every scope ---------------------

_ADMIT_SCRIPT = """
-- KEYS: per rule i: tokens key, concurrency key.  ARGV: now_ms, request_id, tokens, slot_ttl_ms,
-- then per rule i: tpm limit (0 = none), concurrency limit (0 = none).
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local n = #KEYS / 2
local out = {}
local least = -1
for i = 1, n do
  local tpm = tonumber(ARGV[4 + (i - 1) * 2 + 1])
  local conc = tonumber(ARGV[4 + (i - 1) * 2 + 2])
  local used = tonumber(redis.call('GET', KEYS[(i - 1) * 2 + 1]) or '0')
  if tpm > 0 and used + tokens > tpm then return {0, i, 'tokens', used} end
  if tpm > 0 and (least < 0 or tpm - used - tokens < least) then least = tpm - used - tokens end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[(i - 1) * 2 + 2], '-inf', now)
    local inflight = redis.call('ZCARD', KEYS[(i - 1) * 2 + 2])
    if inflight >= conc then return {0, i, 'concurrency', inflight} end
  end
  out[i] = used
end
for i = 1, n do
  local tpm = tonumber(ARGV[4 + (i - 1) * 2 + 1])
  local conc = tonumber(ARGV[4 + (i - 1) * 2 + 2])
  if tpm > 0 then
    redis.call('INCRBY', KEYS[(i - 1) * 2 + 1], tokens)
    redis.call('EXPIRE', KEYS[(i - 1) * 2 + 1], 120)
  end
  if conc > 0 then
    redis.call('ZADD', KEYS[(i - 1) * 2 + 2], now + ttl, ARGV[2])
    redis.call('PEXPIRE', KEYS[(i - 1) * 2 + 2], ttl)
  end
end
return {1, 0, '', least}
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


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis

        self.errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.admit_script = self.client.register_script(_ADMIT_SCRIPT)
        self.release_script = self.client.register_script(_RELEASE_SCRIPT)

    def admit(self, keys: list[str], args: list) -> list:
        try:
            return self.admit_script(keys=keys, args=args)
        except self.errors as exc:
            raise LimitsUnavailable(str(exc)) from exc

    def release(self, token_keys: list[str], concurrency_keys: list[str], request_id: str, correction: int) -> None:
        try:
            self.release_script(keys=token_keys + concurrency_keys, args=[len(token_keys), request_id, correction])
        except self.errors as exc:
            logger.warning("could not release limits of %s: %s", request_id, exc)


class LocalCounters:
    """The same semantics in one process, for the embedded default."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[str, int] = {}
        self.slots: dict[str, dict[str, float]] = {}

    def admit(self, keys: list[str], args: list) -> list:
        now, request_id, tokens, ttl = float(args[0]), args[1], int(args[2]), float(args[3])
        least = -1
        with self.lock:
            for i in range(len(keys) // 2):
                tpm, conc = int(args[4 + i * 2]), int(args[5 + i * 2])
                used = self.tokens.get(keys[i * 2], 0)
                if tpm and used + tokens > tpm:
                    return [0, i + 1, b"tokens", used]
                if tpm and (least < 0 or tpm - used - tokens < least):
                    least = tpm - used - tokens
                slots = self.slots.setdefault(keys[i * 2 + 1], {})
                for rid in [r for r, expiry in slots.items() if expiry <= now]:
                    del slots[rid]
                if conc and len(slots) >= conc:
                    return [0, i + 1, b"concurrency", len(slots)]
            for i in range(len(keys) // 2):
                tpm, conc = int(args[4 + i * 2]), int(args[5 + i * 2])
                if tpm:
                    self.tokens[keys[i * 2]] = self.tokens.get(keys[i * 2], 0) + tokens
                if conc:
                    self.slots.setdefault(keys[i * 2 + 1], {})[request_id] = now + ttl
            if len(self.tokens) > 10_000:
                current = f":{_minute(time.time())}"
                self.tokens = {k: v for k, v in self.tokens.items() if k.endswith(current)}
        return [1, 0, b"", least]

    def release(self, token_keys: list[str], concurrency_keys: list[str], request_id: str, correction: int) -> None:
        with self.lock:
            for key in token_keys:
                if key in self.tokens:
                    self.tokens[key] += correction
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
    """Forget the counter client (tests switch REDIS_URL)."""
    global _counters
    _counters = None


# ---- admission --------------------------------------------------------------------------------


def _request_rate(request, principal: Principal, rule: LimitRule) -> dict | None:
    group = f"rpm:{principal.tenant_id}:{rule.scope}"
    try:
        return get_usage(
            request, group=group, key=lambda g, r: rule.subject or "tenant", rate=f"{rule.rpm}/m", increment=True
        )
    except Exception as exc:  # the cache backend's own connection errors
        raise LimitsUnavailable(str(exc)) from exc


def limits_admit(
    *, request, principal: Principal, request_id: str, rules: list[LimitRule], token_estimate: int
) -> Grant:
    """Count this request against every rule, or raise LimitExceeded naming the first it breaks."""
    grant = Grant(tenant_id=principal.tenant_id, request_id=request_id, token_estimate=token_estimate)
    tightest_requests: tuple[int, int] | None = None
    for rule in rules:
        if not rule.rpm:
            continue
        usage = _request_rate(request, principal, rule)
        if usage is None:
            continue
        remaining = max(usage["limit"] - usage["count"], 0)
        if usage["should_limit"]:
            raise LimitExceeded(rule.name, "requests", usage["limit"], max(int(usage["time_left"]), 1))
        if tightest_requests is None or remaining < tightest_requests[1]:
            tightest_requests = (usage["limit"], remaining)
    if tightest_requests:
        grant.headers["x-ratelimit-limit-requests"] = str(tightest_requests[0])
        grant.headers["x-ratelimit-remaining-requests"] = str(tightest_requests[1])

    metered = [r for r in rules if r.tpm or r.concurrency]
    if not metered:
        return grant
    now = time.time()
    minute = f":{_minute(now)}"
    keys, args = [], [int(now * 1000), request_id, token_estimate, settings.SPENDPLANE_RESERVATION_SECONDS * 1000]
    for rule in metered:
        keys += [_key(principal.tenant_id, rule, "tpm", minute), _key(principal.tenant_id, rule, "inflight")]
        args += [rule.tpm or 0, rule.concurrency or 0]
    ok, index, kind, figure = counters().admit(keys, args)  # figure: tokens used (refused) or left (admitted)
    if not ok:
        rule = metered[index - 1]
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "tokens":
            raise LimitExceeded(rule.name, "tokens", rule.tpm, max(int(60 - now % 60), 1))
        raise LimitExceeded(rule.name, "concurrency", rule.concurrency, 1)
    grant.token_keys = [keys[i * 2] for i, rule in enumerate(metered) if rule.tpm]
    grant.concurrency_keys = [keys[i * 2 + 1] for i, rule in enumerate(metered) if rule.concurrency]
    token_rules = [r for r in metered if r.tpm]
    if token_rules:
        tightest = min(token_rules, key=lambda r: r.tpm)
        grant.headers["x-ratelimit-limit-tokens"] = str(tightest.tpm)
        grant.headers["x-ratelimit-remaining-tokens"] = str(max(int(figure), 0))
    return grant


def limits_release(grant: Grant | None, *, actual_tokens: int) -> None:
    """Free the in-flight slots and correct the token window from the estimate to the actual count."""
    if grant is None or not (grant.token_keys or grant.concurrency_keys):
        return
    counters().release(grant.token_keys, grant.concurrency_keys, grant.request_id, actual_tokens - grant.token_estimate)


def loop_check(*, principal: Principal, end_user: str, body: dict) -> None:
    """Throttle the same end user sending the same request over and over (an agent stuck in a loop)."""
    if not principal.loop_max_repeats:
        return
    who = end_user or f"key:{principal.key_id}"
    fingerprint = json.dumps(
        [body.get("model"), body.get("messages"), body.get("tools"), body.get("system"), body.get("input")],
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(f"{who}\x00{fingerprint}".encode()).hexdigest()[:32]
    key = f"loop:{principal.tenant_id}:{digest}"
    window = principal.loop_window_seconds
    try:
        if cache.add(key, 1, window):
            return
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        return
    except Exception as exc:
        raise LimitsUnavailable(str(exc)) from exc
    if count > principal.loop_max_repeats:
        raise LimitExceeded(f"end_user:{who}", "loop", principal.loop_max_repeats, window)
