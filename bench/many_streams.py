"""Many concurrent streams: N streaming chat completions held open together through the gateway
(every control on), the mock sending a chunk every --chunk-delay-ms, compared with the same
streams sent to the mock directly in the same run. Reports errors, time to first byte and to
the end (medians and p99), the gateway's memory while they are held, and ledger rows.

    python bench/many_streams.py [--streams 1000] [--chunks 200] [--chunk-delay-ms 50] [--ramp-seconds 10]

Starts are spread over --ramp-seconds (a burst of a thousand admissions at the same instant is a
CPU queue on two cores, not a test of holding streams); with streams longer than the ramp, all
of them are open together at the peak, which the output reports.

The client is asyncio (one socket per stream, no thread each), so the load generator does not
become the bottleneck. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
from collections import Counter
from urllib.parse import urlsplit

from harness import children, cpu_by_group, cpu_seconds, prepare, rss_mb, running, seed_tenant

_open = {"now": 0, "peak": 0}
# The mock's send time in each chunk (--stamp-chunks): time.monotonic() is one clock for every
# process on the machine.
_STAMP = re.compile(rb'"mock_sent_at": ([0-9.]+)')


async def one_stream(url: str, body: bytes, key: str | None, started_all: float, delay: float) -> dict:
    await asyncio.sleep(delay)
    parts = urlsplit(url)
    started = time.perf_counter()
    _open["now"] += 1
    _open["peak"] = max(_open["peak"], _open["now"])
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        writer.write(
            (
                f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                f"{auth}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body
        )
        await writer.drain()
        status_line = await reader.readline()
        first_byte = None
        relay_ms = None
        seen = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            if first_byte is None and b"data:" in chunk:
                first_byte = time.perf_counter()
                stamp = _STAMP.search(chunk)
                if stamp:
                    relay_ms = (time.monotonic() - float(stamp.group(1))) * 1000
            seen = (seen + chunk)[-256:]
        writer.close()
        status = status_line.split()[1].decode()
        ok = status == "200" and b"[DONE]" in seen
        return {
            "ok": ok,
            "error": "" if ok else f"status {status}" + ("" if b"[DONE]" in seen else ", no [DONE]"),
            "ttfb_ms": ((first_byte or time.perf_counter()) - started) * 1000,
            "relay_ms": relay_ms,
            "total_ms": (time.perf_counter() - started) * 1000,
            "queued_ms": (started - started_all) * 1000,
        }
    except (OSError, IndexError, asyncio.IncompleteReadError) as exc:
        return {
            "ok": False,
            "error": exc.__class__.__name__,
            "ttfb_ms": 0.0,
            "total_ms": 0.0,
            "queued_ms": 0.0,
            "relay_ms": None,
        }
    finally:
        _open["now"] -= 1


async def fire(url: str, body: bytes, key: str | None, count: int, ramp: float, on_held=None) -> list[dict]:
    """`count` streams, started evenly over `ramp` seconds; `on_held` runs when the last has started."""
    _open["peak"] = 0
    started_all = time.perf_counter()
    tasks = [asyncio.create_task(one_stream(url, body, key, started_all, ramp * i / count)) for i in range(count)]
    if on_held:
        await asyncio.sleep(ramp + 1.0)
        on_held()
    results = await asyncio.gather(*tasks)
    return results, _open["peak"]


def _cpu_now(stack) -> dict[str, float]:
    return {**cpu_by_group(stack), "client": cpu_seconds(os.getpid()), "wall": time.monotonic()}


def _cpu_since(stack, before: dict[str, float]) -> dict[str, float]:
    return {name: value - before[name] for name, value in _cpu_now(stack).items()}


def summary(results: list[dict]) -> dict:
    good = [r for r in results if r["ok"]]
    kinds = Counter(r["error"] for r in results if not r["ok"])
    ttfb = sorted(r["ttfb_ms"] for r in good) or [0.0]
    relay = sorted(r["relay_ms"] for r in good if r["relay_ms"] is not None) or [0.0]
    total = sorted(r["total_ms"] for r in good) or [0.0]
    return {
        "errors": len(results) - len(good),
        "error_kinds": dict(kinds),
        "ttfb_p50": statistics.median(ttfb),
        "ttfb_p99": ttfb[max(int(len(ttfb) * 0.99) - 1, 0)],
        "relay_p50": statistics.median(relay),
        "relay_p99": relay[max(int(len(relay) * 0.99) - 1, 0)],
        "total_p50": statistics.median(total),
        "total_p99": total[max(int(len(total) * 0.99) - 1, 0)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-delay-ms", type=float, default=50)
    parser.add_argument("--ramp-seconds", type=float, default=10, help="Spread the stream starts over this long.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-class", choices=["gevent", "gthread"], help="gunicorn worker class (default: production's)."
    )
    parser.add_argument(
        "--green-mock", action="store_true", help="Run the mock on gevent greenlets instead of threads."
    )
    args = parser.parse_args()
    threads = args.streams // args.workers + 50  # gthread holds one thread per open stream

    stack = prepare(workers=args.workers, threads=threads, worker_class=args.worker_class)
    from metering.models import UsageEvent

    tenant, key = seed_tenant("streams", loop_max_repeats=0)
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "max_tokens": args.chunks,
            "messages": [{"role": "user", "content": f"MOCK_REPLY_TOKENS={args.chunks} tell me a long story"}],
        }
    ).encode()

    memory: dict[str, float] = {}
    with running(stack, chunk_delay_ms=args.chunk_delay_ms, stamp_chunks=True, green_mock=args.green_mock):
        master = stack.gunicorn.pid

        def measure(label: str) -> None:
            memory[label] = sum(rss_mb(pid) for pid in children(master))

        before_rows = UsageEvent.objects.filter(tenant=tenant).count()
        measure("idle")
        cpu = {"direct": _cpu_now(stack)}
        direct_results, direct_peak = asyncio.run(
            fire(f"{stack.mock_url}/v1/chat/completions", body, None, args.streams, args.ramp_seconds)
        )
        direct = summary(direct_results)
        cpu["direct"] = _cpu_since(stack, cpu["direct"])
        cpu["gateway"] = _cpu_now(stack)
        proxied_results, peak = asyncio.run(
            fire(
                f"{stack.proxy_url}/v1/chat/completions",
                body,
                key,
                args.streams,
                args.ramp_seconds,
                lambda: measure("held"),
            )
        )
        proxied = summary(proxied_results)
        cpu["gateway"] = _cpu_since(stack, cpu["gateway"])
        measure("after")
        deadline = time.monotonic() + 30
        while (rows := UsageEvent.objects.filter(tenant=tenant).count() - before_rows) < args.streams:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)

    print(
        f"{args.streams} streams started over {args.ramp_seconds:g} s, {args.chunks} chunks "
        f"{args.chunk_delay_ms:g} ms apart, {stack.describe()}; open together at the peak: "
        f"{peak} through the gateway, {direct_peak} direct"
    )
    print(
        "path | errors | first chunk, mock wrote → client read p50 | p99 | "
        "first byte after request p50 | p99 | whole stream p50 | p99"
    )
    print("--- | --- | --- | --- | --- | --- | --- | ---")
    for name, figures in (("direct to mock", direct), ("through gateway", proxied)):
        print(
            f"{name} | {figures['errors']} | {figures['relay_p50']:.2f} ms | {figures['relay_p99']:.2f} ms | "
            f"{figures['ttfb_p50']:.1f} ms | {figures['ttfb_p99']:.1f} ms | "
            f"{figures['total_p50']:.0f} ms | {figures['total_p99']:.0f} ms"
        )
    print(
        f"first chunk's relay added by the gateway: {proxied['relay_p50'] - direct['relay_p50']:+.2f} ms at p50, "
        f"{proxied['relay_p99'] - direct['relay_p99']:+.2f} ms at p99"
    )
    print(
        f"first byte after the request, added by the gateway: {proxied['ttfb_p50'] - direct['ttfb_p50']:+.1f} ms "
        "at p50 (admission included)"
    )
    print(
        f"gateway worker memory: idle {memory['idle']:.0f} MB, {args.streams} streams held {memory['held']:.0f} MB, "
        f"after {memory['after']:.0f} MB"
    )
    print(f"ledger rows {rows} for {args.streams} streams")
    events = args.streams * (args.chunks + 3)
    print("CPU seconds while the streams ran, by process group (µs per relayed event for the gateway's web):")
    for name, used in cpu.items():
        line = ", ".join(f"{group} {seconds:.1f}" for group, seconds in used.items() if group != "wall")
        print(f"  {name}: {line}; {used['wall']:.1f} s wall")
    print(f"  gateway web per event: {cpu['gateway']['web'] / events * 1e6:.0f} µs ({events} events)")
    for name, figures in (("direct", direct), ("gateway", proxied)):
        if figures["errors"]:
            print(f"{name} errors: {figures['error_kinds']}")
    added_p50 = proxied["relay_p50"] - direct["relay_p50"]
    added_p99 = proxied["relay_p99"] - direct["relay_p99"]
    print("Targets:")
    for met, name in (
        (proxied["errors"] == 0, f"{args.streams} streams held with no errors: {proxied['errors']} errors"),
        (rows == args.streams, f"a ledger row per stream: {rows} for {args.streams}"),
        (added_p50 <= 1, f"first byte relayed within 1 ms of its arrival, at p50: {added_p50:+.2f} ms"),
        (added_p99 <= 1, f"first byte relayed within 1 ms of its arrival, at p99: {added_p99:+.2f} ms"),
    ):
        print(f"  {'met   ' if met else 'MISSED'} {name}")


if __name__ == "__main__":
    main()
