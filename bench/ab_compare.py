"""Two checkouts of the gateway measured against each other in one sitting: short wrk bursts,
alternating between them, so that this shared machine's drifts in speed fall on both alike, each
burst on freshly started gateway processes (see below).

    git worktree add ../base <commit>
    python bench/ab_compare.py --base ../base [--rounds 8] [--seconds 4] [--concurrency 1,32] [--stream]

or one checkout against itself in two settings:

    python bench/ab_compare.py --base . --env-this SPENDPLANE_LEDGER_BATCH_LINGER_MS=50

Both gateways (production configuration: gunicorn, gevent) serve from one database and one mock
upstream, each from its own checkout, so the two must share migrations. Only one of them is
under load at a time, so PostgreSQL's and Redis's CPU during a burst is that side's. For each
load it prints the medians over the rounds, the median of the per-round ratios (this checkout /
base) and in how many rounds this checkout did better. The mock's CPU per request is printed as
a gauge of the machine's speed: it does the same work on both sides.

Why fresh processes for every burst: with one set of processes per side for the whole run, the
same code against itself (A/A) read 8% apart at concurrency 1, in 9 rounds of 10, and so did the
mock's CPU: one connection's chain of processes ran faster or slower depending on where the
scheduler had placed that side's processes, for the whole run. Restarting spreads that over the
rounds.

Uses DATABASE_URL / REDIS_URL when set (PostgreSQL + Redis), else a fresh SQLite file. Needs wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import requests
from harness import cpu_by_group, cpu_ms_per_request, free_port, prepare, running, seed_tenant, start_gateway, stop
from proxy_overhead import run_wrk

MESSAGE = [{"role": "user", "content": "Summarise our usage this week in one line."}]
# metric, label, which way is better
METRICS = [
    ("p50", "p50 ms", "lower"),
    ("p99", "p99 ms", "lower"),
    ("rps", "requests/s", "higher"),
    ("cpu_gateway", "CPU ms/request (web + PG + Redis)", "lower"),
    ("cpu_web", "CPU ms/request, web", "lower"),
    ("cpu_mock", "mock CPU ms/request (machine gauge)", "lower"),
]


@contextlib.contextmanager
def gateway(stack, mock_proc, name: str, root: Path, env: dict[str, str]):
    """The gunicorn of the checkout at `root`, on a port and spool of its own."""
    port = free_port()
    env = {
        **env,
        "SPENDPLANE_BIND": f"127.0.0.1:{port}",
        "SPENDPLANE_LEDGER_SPOOL_DIR": str(stack.workdir / f"{name}-spool"),
    }
    side = replace(stack, env=env, proxy_url=f"http://127.0.0.1:{port}", procs=[], root=root)
    side.procs = [mock_proc, start_gateway(side, stack.workdir / f"{name}-gateway.log")]
    try:
        yield side
    finally:
        stop(side.procs[1:])


def warm(side, key: str, body: dict) -> None:
    for _ in range(20):
        requests.post(
            f"{side.proxy_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
    burst(side, key, body, 32, 1)


def burst(stack, key: str, body: dict, connections: int, seconds: int) -> dict:
    before = cpu_by_group(stack)
    result = run_wrk(
        f"{stack.proxy_url}/v1/chat/completions",
        body,
        key=key,
        connections=connections,
        duration=seconds,
        workdir=stack.workdir,
    )
    per_request = cpu_ms_per_request(before, cpu_by_group(stack), result["requests"])
    result["cpu_web"] = per_request["web"]
    result["cpu_gateway"] = per_request["web"] + per_request["postgres"] + per_request["redis"]
    result["cpu_mock"] = per_request["mock"]
    return result


def report(runs: dict[str, list[dict]]) -> list[str]:
    lines = [
        "metric | base (median) | this (median) | this / base (median of rounds) | this better",
        "---|---|---|---|---",
    ]
    for metric, label, better in METRICS:
        base = [run[metric] for run in runs["base"]]
        this = [run[metric] for run in runs["this"]]
        ratios = [t / b for t, b in zip(this, base, strict=True) if b]
        wins = sum((t < b) if better == "lower" else (t > b) for t, b in zip(this, base, strict=True))
        lines.append(
            f"{label} | {statistics.median(base):.2f} | {statistics.median(this):.2f} | "
            f"{statistics.median(ratios):.3f} | {wins} of {len(base)}"
        )
    errors = {side: sum(run["non2xx"] + run["socket_errors"] for run in side_runs) for side, side_runs in runs.items()}
    lines.append(f"errors: base {errors['base']}, this {errors['this']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="The other checkout (e.g. a git worktree).")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4, help="Seconds per wrk burst.")
    parser.add_argument("--concurrency", default="1,32", help="Comma-separated wrk connection counts.")
    parser.add_argument("--stream", action="store_true", help="Streamed requests instead of plain ones.")
    parser.add_argument("--latency-ms", type=float, default=0, help="Mock upstream delay before answering.")
    parser.add_argument("--workers", type=int, default=2)
    for side in ("this", "base"):
        parser.add_argument(
            f"--env-{side}", action="append", default=[], metavar="NAME=VALUE", help=f"{side}'s gateway's environment"
        )
    args = parser.parse_args()
    env_this, env_base = (dict(item.split("=", 1) for item in items) for items in (args.env_this, args.env_base))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    base_root = args.base.resolve()
    if not (base_root / "spendplane" / "gunicorn.conf.py").exists():
        raise SystemExit(f"{base_root} is not a Spendplane checkout")

    stack = prepare(workers=args.workers, threads=4)
    base_env = {**stack.env, **env_base}
    stack.env = {**stack.env, **env_this}
    _tenant, key = seed_tenant("ab-compare")
    body = {"model": "gpt-4o-mini", "messages": MESSAGE, "max_tokens": 16, "stream": args.stream}
    roots = {"this": stack.root, "base": base_root}
    envs = {"this": stack.env, "base": base_env}
    with running(stack, latency_ms=args.latency_ms, gateway=False):
        print(
            f"this checkout ({stack.root}) against base ({base_root}): {stack.describe()}, "
            f"{'streamed' if args.stream else 'plain'} requests, mock at {args.latency_ms:g} ms, "
            f"{args.rounds} alternating rounds of {args.seconds} s bursts; environment: this {env_this or '-'}, "
            f"base {env_base or '-'}\n"
        )
        for connections in [int(c) for c in args.concurrency.split(",")]:
            runs: dict[str, list[dict]] = {"this": [], "base": []}
            for round_number in range(args.rounds):
                order = ["this", "base"] if round_number % 2 else ["base", "this"]
                for name in order:
                    with gateway(stack, stack.procs[0], name, roots[name], envs[name]) as side:
                        warm(side, key, body)
                        runs[name].append(burst(side, key, body, connections, args.seconds))
            print(f"concurrency {connections}:")
            print("\n".join(report(runs)), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
