"""Soak: mixed traffic at a steady rate for a bounded time, through a real gateway (gunicorn)
to the mock upstream, loopback only. Reports errors (expected 0), the gateway's memory over time
(expected flat) and ledger rows against requests sent (expected equal).

    python bench/soak.py [--minutes 10] [--rate 20] [--workers 2] [--threads 16]

The mix: OpenAI chat (plain and streamed), Anthropic messages (plain and streamed) and
embeddings, across several end users and features, every control on (budget, rpm/tpm,
concurrency, loop throttle, guard). Exits 1 if any expectation fails.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from harness import children, cpu_seconds, prepare, rss_mb, running, seed_tenant

MEMORY_GROWTH_LIMIT = 0.15  # after warm-up; more than this is reported as a leak


def request_mix(proxy_url: str, key: str):
    """An endless, reproducible cycle of (name, callable) pairs covering every endpoint."""
    users = [f"user-{n}" for n in range(8)]
    features = ["search", "summarise", "chat", "triage"]
    rng = random.Random(7)

    def chat(stream: bool):
        body = {
            "model": rng.choice(["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]),
            "messages": [{"role": "user", "content": f"Summarise ticket {rng.randrange(10**6)} in a line."}],
            "max_tokens": 16,
            "stream": stream,
            "user": rng.choice(users),
        }
        return "/v1/chat/completions", body, {"x-spendplane-feature": rng.choice(features)}

    def messages(stream: bool):
        body = {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 16,
            "stream": stream,
            "messages": [{"role": "user", "content": f"Classify message {rng.randrange(10**6)}."}],
            "metadata": {"user_id": rng.choice(users)},
        }
        return "/v1/messages", body, {"x-spendplane-feature": "triage", "anthropic-version": "2023-06-01"}

    def embeddings(_stream: bool):
        body = {"model": "text-embedding-3-small", "input": f"document {rng.randrange(10**6)}"}
        return "/v1/embeddings", body, {"x-spendplane-feature": "search"}

    kinds = [
        ("chat", chat, False),
        ("chat", chat, False),
        ("chat-stream", chat, True),
        ("messages", messages, False),
        ("messages-stream", messages, True),
        ("embeddings", embeddings, False),
    ]
    for name, build, stream in itertools.cycle(kinds):
        path, body, headers = build(stream)
        yield name, path, body, {"Authorization": f"Bearer {key}", **headers}


_sessions = threading.local()


def send(proxy_url: str, path: str, body: dict, headers: dict) -> tuple[int, str]:
    """Status, and for a stream that ended in an error event, 'stream error'."""
    session = getattr(_sessions, "session", None) or requests.Session()
    _sessions.session = session
    try:
        with session.post(proxy_url + path, json=body, headers=headers, timeout=60, stream=True) as response:
            payload = b"".join(response.iter_content(chunk_size=None))
    except requests.RequestException as exc:
        return 0, exc.__class__.__name__
    if response.status_code == 200 and body.get("stream") and b'"error"' in payload:
        return 200, "stream error"
    return response.status_code, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20, help="Requests per second, steady.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--sample-seconds", type=float, default=30, help="Memory sampling interval.")
    args = parser.parse_args()

    stack = prepare(workers=args.workers, threads=args.threads)
    from metering.models import UsageEvent

    tenant, key = seed_tenant("soak", rpm_limit=1_000_000, loop_max_repeats=50)

    outcomes: Counter = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    samples: list[tuple[float, int, list[float]]] = []

    with running(stack):
        master = stack.gunicorn.pid
        mix = request_mix(stack.proxy_url, key)
        before = UsageEvent.objects.filter(tenant=tenant).count()
        cpu_before = sum(cpu_seconds(pid) for pid in children(master))
        sent = 0

        def one(name: str, path: str, body: dict, headers: dict) -> None:
            started = time.perf_counter()
            status, problem = send(stack.proxy_url, path, body, headers)
            with lock:
                outcomes[(name, status, problem)] += 1
                latencies.append((time.perf_counter() - started) * 1000)

        duration = args.minutes * 60
        interval = 1 / args.rate
        began = time.monotonic()
        next_sample = began
        print(f"Soak: {args.rate:g} req/s for {args.minutes:g} min, {stack.describe()}")
        print("minute | sent | errors | worker RSS (MB)")
        with ThreadPoolExecutor(max_workers=64) as pool:
            while (elapsed := time.monotonic() - began) < duration:
                if time.monotonic() >= next_sample:
                    rss = [round(rss_mb(pid), 1) for pid in sorted(children(master))]
                    with lock:
                        errors = sum(n for (_, status, problem), n in outcomes.items() if status != 200 or problem)
                    samples.append((elapsed, sent, rss))
                    print(f"{elapsed / 60:6.1f} | {sent:5d} | {errors:6d} | {rss}", flush=True)
                    next_sample += args.sample_seconds
                pool.submit(one, *next(mix))
                sent += 1
                # Steady rate: sleep to the next slot of the schedule, not a fixed gap.
                time.sleep(max(0.0, began + sent * interval - time.monotonic()))
        cpu_used = sum(cpu_seconds(pid) for pid in children(master)) - cpu_before
        final_rss = [round(rss_mb(pid), 1) for pid in sorted(children(master))]
        deadline = time.monotonic() + 30
        while (recorded := UsageEvent.objects.filter(tenant=tenant).count() - before) < sent:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)

    errors = {k: n for k, n in outcomes.items() if k[1] != 200 or k[2]}
    by_kind = Counter()
    for (name, _status, _problem), n in outcomes.items():
        by_kind[name] += n
    warm = [s for s in samples if s[0] >= 60] or samples
    first, last = sum(warm[0][2]), sum(final_rss)
    growth = (last - first) / first if first else 0.0
    ordered = sorted(latencies)
    print(f"\nsent {sent} requests in {args.minutes:g} min: {dict(sorted(by_kind.items()))}")
    print(
        f"latency p50 {statistics.median(ordered):.1f} ms, p99 {ordered[int(len(ordered) * 0.99) - 1]:.1f} ms; "
        f"gateway CPU {cpu_used * 1000 / max(sent, 1):.2f} ms per request"
    )
    print(f"errors: {sum(errors.values())} {errors if errors else ''}")
    print(
        f"gateway memory after warm-up: {first:.1f} MB -> {last:.1f} MB over {len(final_rss)} workers "
        f"({growth:+.1%}; flat means within {MEMORY_GROWTH_LIMIT:.0%})"
    )
    print(f"ledger rows {recorded} for {sent} requests sent")
    failed = bool(errors) or recorded != sent or growth > MEMORY_GROWTH_LIMIT
    print("SOAK FAILED" if failed else "SOAK PASSED")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
