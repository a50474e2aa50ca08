"""Proxy overhead: the same requests sent to the mock upstream directly and through Spendplane,
in the same run, with wrk as the load generator. Prints medians, p99s and ratios.

    python bench/proxy_overhead.py [--duration 10] [--latency-ms 0,50] [--workers 2] [--server gunicorn]

With the default `--latency-ms 0,50` and `--concurrency 1,32` one run measures every row the
performance targets name (README, "Server model and scaling") and ends with each target, its
figure and whether it was met.

Uses DATABASE_URL / REDIS_URL when set (PostgreSQL + Redis, as production), else a fresh SQLite
file. Needs wrk (`apt-get install wrk`). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from harness import cpu_by_group, cpu_ms_per_request, prepare, running, seed_tenant

LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


def to_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, body: dict, *, key: str | None, connections: int, duration: int, workdir: Path) -> dict:
    script = workdir / f"wrk-{abs(hash((url, connections, json.dumps(body))))}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    script.write_text(LUA.format(body=json.dumps(json.dumps(body)), auth=auth))
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        what = [m.group(0) for m in (errors, socket_errors) if m]
        print(f"wrk at {connections} connections, {url}: {'; '.join(what)}", file=sys.stderr)
    return {
        "p50": p50,
        "p99": p99,
        "rps": rps,
        "requests": total,
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))) if socket_errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run.")
    parser.add_argument(
        "--latency-ms", default="0,50", help="Comma-separated mock upstream delays before answering, in ms."
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes.")
    parser.add_argument("--threads", type=int, default=4, help="Threads per gthread worker.")
    parser.add_argument(
        "--server", choices=["gunicorn", "granian"], default="gunicorn", help="gunicorn (production) or granian."
    )
    parser.add_argument(
        "--worker-class", choices=["gevent", "gthread"], help="gunicorn worker class (default: production's, gevent)."
    )
    parser.add_argument("--concurrency", default="1,32", help="Comma-separated wrk connection counts.")
    parser.add_argument(
        "--controls",
        choices=["on", "no-budget", "off"],
        default="on",
        help="on: budget reservation, rpm/tpm/concurrency, loop throttle and guard; no-budget: the same but "
        "no budget (no PostgreSQL on the way to the provider); off: auth and ledger only.",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    stack = prepare(workers=args.workers, threads=args.threads, server=args.server, worker_class=args.worker_class)
    workdir = stack.workdir
    from metering.models import UsageEvent

    # Every control on, none of them tripping: a budget reserved against, rpm/tpm/concurrency
    # counted, the loop throttle fingerprinting each request. Off: auth and the ledger only.
    if args.controls == "on":
        tenant, key = seed_tenant("bench")
    elif args.controls == "no-budget":
        tenant, key = seed_tenant("bench-no-budget", monthly_budget_usd=None)
    else:
        off = {"monthly_budget_usd": None, "rpm_limit": None, "tpm_limit": None, "max_concurrency": None}
        tenant, key = seed_tenant("bench-off", **off, loop_max_repeats=0, guard_mode="off")

    latencies = [float(ms) for ms in args.latency_ms.split(",")]
    with running(stack):
        direct = f"{stack.mock_url}/v1/chat/completions"
        proxied = f"{stack.proxy_url}/v1/chat/completions"
        message = [{"role": "user", "content": "Summarise our usage this week in one line."}]
        # Warm both paths (token encodings, price table, connection pools).
        for _ in range(20):
            requests.post(
                proxied,
                json={"model": "gpt-4o-mini", "messages": message},
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
        before = UsageEvent.objects.filter(tenant=tenant).count()
        rows = []
        sent_through_proxy = 0
        for latency_ms in latencies:
            # The mock delays one answer by what its last message asks (MOCK_LATENCY_MS).
            delayed = [{"role": "user", "content": f"{message[0]['content']} MOCK_LATENCY_MS={latency_ms:g}"}]
            for stream in (False, True):
                body = {"model": "gpt-4o-mini", "messages": delayed, "max_tokens": 16, "stream": stream}
                for connections in [int(c) for c in args.concurrency.split(",")]:
                    run = {"connections": connections, "duration": args.duration, "workdir": workdir}
                    d = run_wrk(direct, body, key=None, **run)
                    cpu_before = cpu_by_group(stack)
                    p = run_wrk(proxied, body, key=key, **run)
                    cpu_after = cpu_by_group(stack)
                    p["cpu_ms"] = cpu_ms_per_request(cpu_before, cpu_after, p["requests"])
                    sent_through_proxy += p["requests"]
                    rows.append((latency_ms, stream, connections, d, p))
        time.sleep(1)
        recorded = UsageEvent.objects.filter(tenant=tenant).count() - before

    print(f"\nSpendplane proxy overhead, controls {args.controls}: {stack.describe()}, {args.duration}s per run")
    header = (
        "upstream",
        "stream",
        "conc",
        "direct p50",
        "proxy p50",
        "added p50",
        "direct p99",
        "proxy p99",
        "added p99",
        "direct rps",
        "proxy rps",
        "rps ratio",
        "CPU ms/req web",
        "PG",
        "Redis",
        "gateway total",
        "mock",
        "errors",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for latency_ms, stream, connections, d, p in rows:
        print(
            " | ".join(
                [
                    f"{latency_ms:g} ms",
                    "yes" if stream else "no",
                    str(connections),
                    f"{d['p50']:.2f} ms",
                    f"{p['p50']:.2f} ms",
                    f"{p['p50'] - d['p50']:+.2f} ms",
                    f"{d['p99']:.2f} ms",
                    f"{p['p99']:.2f} ms",
                    f"{p['p99'] - d['p99']:+.2f} ms",
                    f"{d['rps']:.0f}",
                    f"{p['rps']:.0f}",
                    f"{p['rps'] / d['rps']:.2f}",
                    f"{p['cpu_ms']['web']:.2f}",
                    f"{p['cpu_ms']['postgres']:.2f}",
                    f"{p['cpu_ms']['redis']:.2f}",
                    f"{p['cpu_ms']['web'] + p['cpu_ms']['postgres'] + p['cpu_ms']['redis']:.2f}",
                    f"{p['cpu_ms']['mock']:.2f}",
                    str(p["non2xx"] + p["socket_errors"]),
                ]
            )
        )
    print(
        "\nCPU ms per proxied request, by process group: web (gunicorn), PG (every PostgreSQL server "
        "process), Redis; 'gateway total' is their sum, the figure the target counts; the mock is apart."
    )
    print(
        f"\nLedger rows written {recorded} for {sent_through_proxy} proxied requests completed by wrk "
        "(wrk may close a few in-flight requests at the end of each run; those are recorded too)."
    )
    print_targets(rows)


def print_targets(rows: list) -> None:
    """Each performance target these rows measure: its figure and whether it was met."""
    checks = []
    for latency_ms, stream, connections, d, p in rows:
        where = f"{latency_ms:g} ms upstream, {'streamed' if stream else 'plain'}, c={connections}"
        total_cpu = p["cpu_ms"]["web"] + p["cpu_ms"]["postgres"] + p["cpu_ms"]["redis"]
        if connections == 1 and not stream:
            checks.append((f"added p50 <= 2 ms ({where})", p["p50"] - d["p50"], 2.0, "ms", False))
            checks.append((f"added p99 <= 6 ms ({where})", p["p99"] - d["p99"], 6.0, "ms", False))
        if connections == 32 and latency_ms == 0:
            floor = 300 if stream else 800
            checks.append((f"requests/s >= {floor} ({where})", p["rps"], floor, "", True))
        checks.append((f"CPU <= 2.5 ms/request, web + PG + Redis ({where})", total_cpu, 2.5, "ms", False))
    if not checks:
        return
    print("\nTargets:")
    for name, figure, bound, unit, at_least in checks:
        met = figure >= bound if at_least else figure <= bound
        print(f"  {'met   ' if met else 'MISSED'} {name}: {figure:.2f}{' ' + unit if unit else ''}")


if __name__ == "__main__":
    main()
