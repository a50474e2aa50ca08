"""Response headers the framework does not set by itself, and the brake on guessed API keys."""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django_ratelimit.core import get_usage

logger = logging.getLogger("spendplane.security")

# The dashboards and the admin load only their own scripts and styles (htmx adds one <style>).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# Swagger UI and Redoc start themselves from inline scripts; they are left to their own defaults.
_CSP_EXEMPT_PREFIXES = ("/api/docs/", "/api/redoc/")


class SecurityHeadersMiddleware:
    """CSP on HTML pages; `no-store` on the proxy's answers, which carry model output."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        path = request.path
        if path.startswith("/v1/"):
            response.headers.setdefault("Cache-Control", "no-store")
        elif response.get("Content-Type", "").startswith("text/html") and not path.startswith(_CSP_EXEMPT_PREFIXES):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


def client_address(meta) -> str:
    """The caller's address: REMOTE_ADDR, or the entry SPENDPLANE_TRUSTED_PROXIES hops from the
    right of X-Forwarded-For when the gateway runs behind that many proxies of its own."""
    hops = settings.SPENDPLANE_TRUSTED_PROXIES
    if hops:
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return meta.get("REMOTE_ADDR", "")


def blocked_cache_key(meta) -> str:
    """The cache entry that marks an address as blocked (its value: when the block ends, epoch s)."""
    return f"badkey-blocked:{client_address(meta)}"


def retry_after_from_flag(flag) -> int | None:
    if not flag:
        return None
    return max(1, math.ceil(float(flag) - time.time()))


def bad_keys_retry_after(meta) -> int | None:
    """Seconds this address stays blocked for sending too many bad keys, else None."""
    try:
        return retry_after_from_flag(cache.get(blocked_cache_key(meta)))
    except Exception:
        return None  # the brake is a nicety; the key check itself still runs


def bad_key_note(request) -> None:
    """Count one unknown or revoked key (or wrong master key) from this address, with
    django-ratelimit's fixed window; at the limit, the address is blocked until the window ends."""
    limit = settings.SPENDPLANE_BAD_KEYS_PER_MINUTE
    if not limit:
        return
    try:
        usage = get_usage(
            request, group="bad-keys", key=lambda _group, r: client_address(r.META), rate=f"{limit}/m", increment=True
        )
        if usage and usage["count"] >= usage["limit"]:
            seconds = max(int(usage["time_left"]), 1)
            cache.set(blocked_cache_key(request.META), time.time() + seconds, seconds)
    except Exception:
        logger.warning("could not count a bad key; the cache is unavailable")
