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
import statistics
import time
from collections import Counter
from urllib.parse import urlsplit

from harness import children, prepare, rss_mb, running, seed_tenant

_open = {"now": 0, "peak": 0}


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
        seen = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            if first_byte is None and b"data:" in chunk:
                first_byte = time.perf_counter()
            seen = (seen + chunk)[-256:]
        writer.close()
        status = status_line.split()[1].decode()
        ok = status == "200" and b"[DONE]" in seen
        return {
            "ok": ok,
            "error": "" if ok else f"status {status}" + ("" if b"[DONE]" in seen else ", no [DONE]"),
            "ttfb_ms": ((first_byte or time.perf_counter()) - started) * 1000,
            "total_ms": (time.perf_counter() - started) * 1000,
            "queued_ms": (started - started_all) * 1000,
        }
    except (OSError, IndexError, asyncio.IncompleteReadError) as exc:
        return {"ok": False, "error": exc.__class__.__name__, "ttfb_ms": 0.0, "total_ms": 0.0, "queued_ms": 0.0}
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


def summary(results: list[dict]) -> dict:
    good = [r for r in results if r["ok"]]
    kinds = Counter(r["error"] for r in results if not r["ok"])
    ttfb = sorted(r["ttfb_ms"] for r in good) or [0.0]
    total = sorted(r["total_ms"] for r in good) or [0.0]
    return {
        "errors": len(results) - len(good),
        "error_kinds": dict(kinds),
        "ttfb_p50": statistics.median(ttfb),
        "ttfb_p99": ttfb[max(int(len(ttfb) * 0.99) - 1, 0)],
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
    args = parser.parse_args()
    threads = args.streams // args.workers + 50  # gthread holds one thread per open stream

    stack = prepare(workers=args.workers, threads=threads)
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
    with running(stack, chunk_delay_ms=args.chunk_delay_ms):
        master = stack.gunicorn.pid

        def measure(label: str) -> None:
            memory[label] = sum(rss_mb(pid) for pid in children(master))

        before_rows = UsageEvent.objects.filter(tenant=tenant).count()
        measure("idle")
        direct_results, direct_peak = asyncio.run(
            fire(f"{stack.mock_url}/v1/chat/completions", body, None, args.streams, args.ramp_seconds)
        )
        direct = summary(direct_results)
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
    print("path | errors | first byte p50 | first byte p99 | whole stream p50 | whole stream p99")
    print("--- | --- | --- | --- | --- | ---")
    for name, figures in (("direct to mock", direct), ("through gateway", proxied)):
        print(
            f"{name} | {figures['errors']} | {figures['ttfb_p50']:.1f} ms | {figures['ttfb_p99']:.1f} ms | "
            f"{figures['total_p50']:.0f} ms | {figures['total_p99']:.0f} ms"
        )
    print(
        f"first byte added by the gateway: {proxied['ttfb_p50'] - direct['ttfb_p50']:+.1f} ms at p50 "
        "(admission included)"
    )
    print(
        f"gateway worker memory: idle {memory['idle']:.0f} MB, {args.streams} streams held {memory['held']:.0f} MB, "
        f"after {memory['after']:.0f} MB"
    )
    print(f"ledger rows {rows} for {args.streams} streams")
    for name, figures in (("direct", direct), ("gateway", proxied)):
        if figures["errors"]:
            print(f"{name} errors: {figures['error_kinds']}")


if __name__ == "__main__":
    main()
