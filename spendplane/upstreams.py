"""HTTP to model providers: one pooled `requests.Session` per upstream base URL, made once.

The proxy's own calls go straight to the session's urllib3 connection pool (`post`): requests'
per-call machinery (cookie jars, hooks, environment merging, its Response wrapper) was a third
of the proxy's HTTP-client CPU and buys nothing on a fixed JSON POST."""

from __future__ import annotations

import threading

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

from metering.routing import Upstream
from spendplane.socket_checks import readable_now

_sessions: dict[str, requests.Session] = {}
_lock = threading.Lock()


class _HTTPConnection(urllib3.connection.HTTPConnection):
    @property
    def is_connected(self) -> bool:
        # urllib3 asks before reusing a pooled connection; see spendplane/socket_checks.py.
        return self.sock is not None and not readable_now(self.sock)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    is_connected = _HTTPConnection.is_connected


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter, whose pools reuse a connection after the cheap check above."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


def session_for(upstream: Upstream) -> requests.Session:
    key = upstream.base_url
    session = _sessions.get(key)
    if session is None:
        with _lock:
            session = _sessions.get(key)
            if session is None:
                session = requests.Session()
                # Retries are the gateway's decision, never urllib3's: a silent retry double-bills.
                adapter = _Adapter(
                    pool_connections=4, pool_maxsize=settings.SPENDPLANE_UPSTREAM_POOL_SIZE, max_retries=0
                )
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.trust_env = False
                _sessions[key] = session
    return session


_routes: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}


def _pool_and_path(upstream: Upstream, url: str) -> tuple[urllib3.HTTPConnectionPool, str]:
    """The connection pool and request path for a URL, parsed once. A pool the pool manager has
    since closed (evicted for another host) is looked up again."""
    found = _routes.get(url)
    if found is None or found[0].pool is None:
        pool = session_for(upstream).get_adapter(url).poolmanager.connection_from_url(url)
        found = _routes[url] = (pool, urllib3.util.parse_url(url).request_uri)
    return found


def post(upstream: Upstream, url: str, *, body: bytes, headers: dict, stream: bool) -> urllib3.BaseHTTPResponse:
    """POST on the upstream's pooled connections. Raises urllib3's errors (NewConnectionError,
    ConnectTimeoutError, ReadTimeoutError, ProtocolError…); never retries or follows redirects."""
    pool, path = _pool_and_path(upstream, url)
    return pool.urlopen(
        "POST",
        path,
        body=body,
        headers=headers,
        timeout=urllib3.Timeout(connect=upstream.connect_timeout, read=upstream.read_timeout),
        retries=False,
        redirect=False,
        preload_content=not stream,
        decode_content=False,
    )


def finish(response: urllib3.BaseHTTPResponse, *, consumed: bool) -> None:
    """Give the connection back to the pool, or drop it when the body was not read to its end."""
    if not consumed:
        response.close()
    response.release_conn()


def openai_headers(upstream: Upstream) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return headers


def anthropic_headers(upstream: Upstream, client_meta) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
        "anthropic-version": client_meta.get("HTTP_ANTHROPIC_VERSION") or "2023-06-01",
    }
    beta = client_meta.get("HTTP_ANTHROPIC_BETA")
    if beta:
        headers["anthropic-beta"] = beta
    if upstream.api_key:
        headers["x-api-key"] = upstream.api_key
    return headers
