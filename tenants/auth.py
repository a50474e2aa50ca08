"""Authentication: proxy API keys (sp_…) and the management API's master key."""

from __future__ import annotations

import contextlib
import hmac
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from spendplane import security

from .key_cache import local_keys, publish_forget
from .models import ApiKey, hash_api_key
from .principal import Principal

logger = logging.getLogger("spendplane.auth")
_MISSING = "missing"
_LAST_USED_EVERY_SECONDS = 60


def _cache_key(digest: str) -> str:
    return f"apikey:{digest}"


def key_lookup(raw: str, *, client_meta=None) -> tuple[Principal | None, int | None]:
    """The key's cached snapshot (read from the database at most every SPENDPLANE_CACHE_SECONDS)
    and, when `client_meta` is given, how long the caller's address stays blocked for bad keys
    (None: not blocked), read together in one cache round trip. A blocked address gets no
    database read: only keys the cache already knows can still be used from it.

    The principal is None for a key that does not exist. Revoked, expired and suspended keys are
    returned so the caller can say which; `forget_api_keys` drops the snapshot when a key or its
    tenant changes."""
    digest = hash_api_key(raw)
    held = local_keys.get(digest)
    if held is not None:
        return held, None  # never revoked: an address's bad-key block does not apply to it
    generation = local_keys.generation
    entry = _cache_key(digest)
    wanted = [entry] if client_meta is None else [entry, security.blocked_cache_key(client_meta)]
    try:
        found = cache.get_many(wanted)
    except Exception:  # the shared cache is down: the database still answers
        logger.warning("key cache unavailable; reading the database")
        found = {}
    blocked = None if client_meta is None else security.retry_after_from_flag(found.get(wanted[1]))
    cached = found.get(entry)
    if cached == _MISSING:
        return None, blocked
    if cached is not None or blocked is not None:
        principal = cached
    else:
        key = ApiKey.objects.for_raw_key(raw)
        principal = Principal.from_key(key) if key else None
        with contextlib.suppress(Exception):
            cache.set(entry, principal or _MISSING, settings.SPENDPLANE_CACHE_SECONDS)
    if principal is not None and not principal.revoked:
        local_keys.put(digest, principal, read_at_generation=generation)
    return principal, blocked


def forget_api_keys(key_hashes) -> None:
    """Drop these keys' snapshots from the shared cache and from every process's own copy; again
    once the surrounding transaction commits, so nobody re-reads the old rows in between."""
    hashes = list(key_hashes)
    if not hashes:
        return

    def forget() -> None:
        cache.delete_many([_cache_key(h) for h in hashes])
        publish_forget(hashes)

    forget()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(forget)


_touched: dict[int, float] = {}


def touch_last_used(principal: Principal) -> None:
    """Record key use, writing at most once a minute per key (checked in process first, so most
    requests cost no round trip at all)."""
    now = time.monotonic()
    if now - _touched.get(principal.key_id, -1e9) < _LAST_USED_EVERY_SECONDS:
        return
    _touched[principal.key_id] = now
    try:
        due = cache.add(f"apikey-used:{principal.key_id}", 1, _LAST_USED_EVERY_SECONDS)
    except Exception:
        due = False
    if due:
        ApiKey.objects.filter(pk=principal.key_id).update(last_used_at=timezone.now())


def raw_key_from_headers(meta) -> str:
    """The bearer token, or the `x-api-key` header Anthropic clients send."""
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return meta.get("HTTP_X_API_KEY", "").strip()


class MasterPrincipal:
    """The operator holding SPENDPLANE_MASTER_KEY: a staff principal with no user row."""

    is_authenticated = True
    is_staff = True
    is_superuser = True
    is_active = True
    pk = None
    id = None
    username = "master-key"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm, obj=None) -> bool:
        return True


class MasterKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        master = settings.SPENDPLANE_MASTER_KEY
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not master or header[:7].lower() != "bearer ":
            return None
        token = header[7:].strip()
        if token.startswith("sp_"):
            raise exceptions.AuthenticationFailed("Tenant API keys cannot use the management API.")
        if hmac.compare_digest(token.encode(), master.encode()):
            return MasterPrincipal(), token
        _refuse_if_guessing(request)
        security.bad_key_note(request._request)
        return None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="spendplane"'


def _refuse_if_guessing(request) -> None:
    wait = security.bad_keys_retry_after(request.META)
    if wait is not None:
        raise exceptions.Throttled(wait, detail="Too many invalid credentials from this address.")


class CountedTokenAuthentication(authentication.TokenAuthentication):
    """DRF's staff tokens (`Token …`), with wrong tokens counted like wrong master keys."""

    def authenticate(self, request):
        if request.META.get("HTTP_AUTHORIZATION", "")[:6].lower() == "token ":
            _refuse_if_guessing(request)
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            security.bad_key_note(request._request)
            raise


class IsStaffOrMasterKey(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)
