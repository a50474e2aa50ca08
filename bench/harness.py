"""What the benchmark scripts share: the mock upstream and a gunicorn gateway on loopback ports,
on DATABASE_URL / REDIS_URL when set (PostgreSQL + Redis, as production), else a fresh SQLite file."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


@dataclass
class Stack:
    workdir: Path
    env: dict
    mock_url: str
    proxy_url: str
    server: str = "gunicorn"
    procs: list = field(default_factory=list)
    root: Path = ROOT  # the checkout whose gateway runs (bench/ab_compare.py runs two)

    @property
    def gunicorn(self) -> subprocess.Popen:
        return self.procs[1]

    def describe(self) -> str:
        db = self.env["DATABASE_URL"].split(":")[0]
        cache = "redis" if self.env.get("REDIS_URL") else "in-process"
        worker_class = self.env.get("SPENDPLANE_WORKER_CLASS", "gevent")  # production's default
        if self.server == "gunicorn" and worker_class == "gevent":
            shape = f"{self.env['WEB_CONCURRENCY']} gunicorn gevent workers"
        else:
            shape = f"{self.env['WEB_CONCURRENCY']} {self.server} workers x {self.env['SPENDPLANE_THREADS']} threads"
        return f"{shape}, database {db}, cache {cache}"


def prepare(
    *, workers: int, threads: int, server: str = "gunicorn", worker_class: str | None = None, **extra_env
) -> Stack:
    """Environment, migrations and Django set up in this process (for seeding and reading the
    ledger); nothing started yet."""
    workdir = Path(tempfile.mkdtemp(prefix="spendplane-bench-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "spendplane.settings"}
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    mock_port, proxy_port = free_port(), free_port()
    env.update(
        OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{mock_port}",
        SPENDPLANE_BIND=f"127.0.0.1:{proxy_port}",
        WEB_CONCURRENCY=str(workers),
        SPENDPLANE_THREADS=str(threads),
        SPENDPLANE_LEDGER_SPOOL_DIR=str(workdir / "spool"),
        LOG_LEVEL="WARNING",
        **extra_env,
    )
    if worker_class:
        env["SPENDPLANE_WORKER_CLASS"] = worker_class
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    return Stack(
        workdir=workdir,
        env=env,
        mock_url=f"http://127.0.0.1:{mock_port}",
        proxy_url=f"http://127.0.0.1:{proxy_port}",
        server=server,
    )


def seed_tenant(name: str, **plan_fields) -> tuple:
    """A plan named `name` with every control on and none tripping (override with plan_fields),
    a tenant on it and a fresh API key: (tenant, raw key). Call after prepare()."""
    from decimal import Decimal

    from tenants import services
    from tenants.models import Plan, Tenant

    defaults = {
        "monthly_budget_usd": Decimal("1000000"),
        "rpm_limit": 10_000_000,
        "tpm_limit": 1_000_000_000,
        "max_concurrency": 100_000,
        "loop_max_repeats": 1_000_000_000,
        "loop_window_seconds": 60,
        "guard_mode": "block",
        **plan_fields,
    }
    plan, _ = Plan.objects.update_or_create(name=name, defaults=defaults)
    tenant, _ = Tenant.objects.get_or_create(external_id=name, defaults={"name": name.title(), "plan": plan})
    _, key = services.api_key_create(tenant=tenant, name=name)
    return tenant, key


# Runs manage.py with gevent's monkey patching first, so the mock's thread per connection is a greenlet.
_GREEN = "from gevent import monkey; monkey.patch_all(); import runpy; runpy.run_path('manage.py', run_name='__main__')"


@contextlib.contextmanager
def running(
    stack: Stack,
    *,
    latency_ms: float = 0,
    chunk_delay_ms: float = 0,
    stamp_chunks: bool = False,
    green_mock: bool = False,
    gateway: bool = True,
):
    """The mock upstream and (unless `gateway=False`) the gateway, stopped (and the work directory
    removed) afterwards. The gateway's log goes to spendplane-bench-gateway.log in the temporary
    directory.
    `green_mock` runs the mock on greenlets: a thousand streams cost it far less CPU than a
    thousand threads, leaving the two cores to what is measured."""
    mock_port = stack.mock_url.rsplit(":", 1)[1]
    mock = [sys.executable, *(["-c", _GREEN] if green_mock else ["manage.py"])]
    mock += ["mock_upstream", "--port", mock_port, "--latency-ms", str(latency_ms)]
    if chunk_delay_ms:
        mock += ["--chunk-delay-ms", str(chunk_delay_ms)]
    if stamp_chunks:
        mock.append("--stamp-chunks")
    stack.procs = [subprocess.Popen(mock, cwd=ROOT, env=stack.env, stdout=subprocess.DEVNULL)]
    try:
        wait_up(f"{stack.mock_url}/v1/models")
        if gateway:
            stack.procs.append(start_gateway(stack, Path(tempfile.gettempdir()) / "spendplane-bench-gateway.log"))
        yield stack
    finally:
        stop(stack.procs)
        shutil.rmtree(stack.workdir, ignore_errors=True)


def start_gateway(stack: Stack, log: Path) -> subprocess.Popen:
    """The gateway of the checkout at `stack.root`, its stderr appended to `log`, once it answers."""
    with open(log, "a") as handle:
        proc = subprocess.Popen(_server_command(stack), cwd=stack.root, env=stack.env, stderr=handle)
    try:
        wait_up(f"{stack.proxy_url}/healthz")
    except BaseException:
        stop([proc])
        raise
    return proc


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM (the gateway flushes its ledger writer), then a kill for whatever is still up after 20 s."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_ms_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request by process group, from two `cpu_by_group` readings."""
    return {name: (after[name] - before[name]) * 1000 / max(requests, 1) for name in after}


def _server_command(stack: Stack) -> list[str]:
    """gunicorn with the production configuration, or granian (WSGI, Rust HTTP front) for
    comparison: the server model in the README was chosen by running both."""
    if stack.server == "granian":
        host, port = stack.env["SPENDPLANE_BIND"].rsplit(":", 1)
        workers, threads = stack.env["WEB_CONCURRENCY"], stack.env["SPENDPLANE_THREADS"]
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", port,
                "--workers", workers, "--blocking-threads", threads, "spendplane.wsgi:application"]  # fmt: skip
    return [sys.executable, "-m", "gunicorn", "-c", "spendplane/gunicorn.conf.py", "spendplane.wsgi"]


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (gunicorn's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def cpu_by_group(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by the gateway (server master and workers), PostgreSQL (every
    server process; 0 on SQLite), Redis and the mock upstream."""
    master = stack.gunicorn.pid
    groups = {
        "web": [master, *children(master)],
        "postgres": _pids_named("postgres") if stack.env["DATABASE_URL"].startswith("postgres") else [],
        "redis": _pids_named("redis-server") if stack.env.get("REDIS_URL") else [],
        "mock": [stack.procs[0].pid],
    }
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
