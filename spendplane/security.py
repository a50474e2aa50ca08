"""Response headers the framework does not set by itself, and the brake on guessed API keys."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache

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


def _bad_key_counter(address: str) -> str:
    return f"badkey:{address}:{int(time.time() // 60)}"


def bad_keys_retry_after(meta) -> int | None:
    """Seconds to wait when this address sent too many unknown keys this minute, else None.
    Checked before the key is looked up, so guessing costs the gateway one cache read."""
    limit = settings.SPENDPLANE_BAD_KEYS_PER_MINUTE
    if not limit:
        return None
    try:
        failures = cache.get(_bad_key_counter(client_address(meta)), 0)
    except Exception:
        return None  # the brake is a nicety; the key check itself still runs
    if failures < limit:
        return None
    return 60 - int(time.time()) % 60


def bad_key_note(meta) -> None:
    """Count one unknown or revoked key from this address."""
    counter = _bad_key_counter(client_address(meta))
    try:
        if not cache.add(counter, 1, 120):
            cache.incr(counter)
    except Exception:
        logger.warning("could not count a bad key; the cache is unavailable")
