"""HTTP to model providers: one pooled `requests.Session` per upstream base URL, made once."""

from __future__ import annotations

import threading

import requests
from requests.adapters import HTTPAdapter

from metering.routing import Upstream

_sessions: dict[str, requests.Session] = {}
_lock = threading.Lock()
POOL_SIZE = 128


def session_for(upstream: Upstream) -> requests.Session:
    key = upstream.base_url
    session = _sessions.get(key)
    if session is None:
        with _lock:
            session = _sessions.get(key)
            if session is None:
                session = requests.Session()
                # Retries are the gateway's decision, never urllib3's: a silent retry double-bills.
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.trust_env = False
                _sessions[key] = session
    return session


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
