"""Real gateway processes (gunicorn) on the test database, for claims that span processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.conftest import MASTER_KEY

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    def __init__(self, mock_url: str, **extra_env) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "DB_CONN_MAX_AGE": "0",
            "REDIS_URL": settings.REDIS_URL,
            "OPENAI_BASE_URL": f"{mock_url}/v1",
            "ANTHROPIC_BASE_URL": mock_url,
            "SPENDPLANE_MASTER_KEY": MASTER_KEY,
            "SPENDPLANE_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "1",
            "SPENDPLANE_THREADS": "32",
            "SPENDPLANE_KEY_PEPPER": settings.SPENDPLANE_KEY_PEPPER,
            "LOG_LEVEL": "WARNING",
            "SPENDPLANE_LEDGER_AFTER_RESPONSE": "0",
            **extra_env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "spendplane/gunicorn.conf.py", "spendplane.wsgi"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gateway process did not start")

    def kill(self) -> None:
        """SIGKILL the whole process group: master and worker die mid-request, no clean-up runs."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def start_gateway(transactional_db, mock_upstream):
    """Start gateway processes sharing this test's database and Redis; all stopped afterwards."""
    started: list[GatewayProcess] = []

    def start(**extra_env) -> GatewayProcess:
        process = GatewayProcess(mock_upstream.url, **extra_env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def two_gateways(start_gateway):
    return start_gateway(), start_gateway()


needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (shared counters across processes)")
