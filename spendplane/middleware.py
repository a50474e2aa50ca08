"""The browser's middleware (static files, sessions, logins, messages, htmx), skipped on the
OpenAI-compatible API under /v1/: its clients send bearer keys, never cookies, and the gateway
answers them itself. Each class is Django's own, so the admin's checks still find them. (CSRF's
middleware stays as it is: the deployment check looks for it by name, and the proxy views are
exempt from it anyway.)
Measured under load, these ran on every proxied request for about a tenth of a worker's CPU."""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django_htmx.middleware import HtmxMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

API_PREFIX = "/v1/"


class _BrowserOnly:
    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class BrowserWhiteNoiseMiddleware(_BrowserOnly, WhiteNoiseMiddleware):
    pass


class BrowserSessionMiddleware(_BrowserOnly, SessionMiddleware):
    pass


class BrowserAuthenticationMiddleware(_BrowserOnly, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(_BrowserOnly, MessageMiddleware):
    pass


class BrowserHtmxMiddleware(_BrowserOnly, HtmxMiddleware):
    pass
