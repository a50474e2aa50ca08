"""Profile of the proxy's hot path: N chat completions through the full Django stack in this
process (every control on, as bench/proxy_overhead.py sets them) against the mock upstream, under
pyinstrument. Prints the call tree, trimmed to the steps that cost at least --min-percent.

    python bench/profile_hot_path.py [--requests 2000] [--stream] [--min-percent 1]

Uses DATABASE_URL / REDIS_URL when set (PostgreSQL + Redis), else a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from harness import ROOT, prepare, seed_tenant, wait_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--min-percent", type=float, default=1.0)
    args = parser.parse_args()

    stack = prepare(workers=1, threads=1)
    from django.test import Client
    from pyinstrument import Profiler

    _tenant, key = seed_tenant("profile")
    mock_port = stack.mock_url.rsplit(":", 1)[1]
    mock = subprocess.Popen(
        [sys.executable, "manage.py", "mock_upstream", "--port", mock_port], cwd=ROOT, env=stack.env
    )
    try:
        wait_up(f"{stack.mock_url}/v1/models")
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        body = json.dumps(
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Summarise our usage this week in one line."}],
                "max_tokens": 16,
                "stream": args.stream,
            }
        )

        def one() -> None:
            response = client.post("/v1/chat/completions", body, content_type="application/json")
            if response.streaming:
                b"".join(response.streaming_content)
            assert response.status_code == 200, response.content

        for _ in range(50):
            one()
        timings = []
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for _ in range(args.requests):
            started = time.perf_counter()
            one()
            timings.append((time.perf_counter() - started) * 1000)
        profiler.stop()
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    print(
        f"{args.requests} {'streamed ' if args.stream else ''}requests in process, {stack.describe()}: "
        f"median {statistics.median(timings):.2f} ms per request (profiler on)"
    )
    print(profiler.output_text(unicode=True, color=False, show_all=False, time="percent_of_total"))


if __name__ == "__main__":
    main()
