"""Where the web processes' CPU goes under load: gunicorn (the production configuration) serves
wrk at concurrency 32 while py-spy samples every worker, counting only threads that hold the GIL
(Python CPU, not waiting). Prints each function's share of the samples, inclusive and self.

    python bench/profile_under_load.py [--seconds 10] [--connections 32] [--top 60]

Uses DATABASE_URL / REDIS_URL when set (PostgreSQL + Redis), else a fresh SQLite file. Needs wrk
and py-spy (requirements-dev.txt); py-spy attaches with ptrace, so run it as root or allow ptrace.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import children, prepare, running, seed_tenant
from proxy_overhead import LUA

_FRAME = re.compile(r"(.*) \((.*?):\d+\)")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group(2).split("site-packages/")[-1].split("/python3.11/")[-1]
    return f"{match.group(1)} ({path})"


def summarise(paths: list[Path], top: int) -> str:
    inclusive, own = collections.Counter(), collections.Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():  # a line py-spy cut short when the process went away
                continue
            names = [_name(frame) for frame in stack.split(";")[1:]]
            count = int(count)
            total += count
            for name in set(names):
                inclusive[name] += count
            if names:
                own[names[-1]] += count
    lines = [f"{total} samples of threads holding the GIL", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top // 2)]
    return "\n".join(lines)


def _sample(spy: str, out: Path, seconds: int) -> subprocess.Popen:
    pid = out.stem.split("-")[1]
    command = [spy, "record", "--pid", pid, "--duration", str(seconds), "--rate", "250", "--gil", "--nonblocking"]
    return subprocess.Popen(
        [*command, "--format", "raw", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--stream", action="store_true", help="streamed requests (the mock sends 16 chunks)")
    parser.add_argument("--save", type=Path, help="copy py-spy's raw stacks (one file a worker) into this folder")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not shutil.which("wrk") or not Path(spy).exists():
        raise SystemExit("needs wrk (apt-get install wrk) and py-spy (pip install -r requirements-dev.txt)")

    stack = prepare(workers=args.workers, threads=args.threads)
    _tenant, key = seed_tenant("profile-load")
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Summarise our usage this week in one line."}],
        "max_tokens": 16,
        "stream": args.stream,
    }
    script = stack.workdir / "load.lua"
    script.write_text(
        LUA.format(body=json.dumps(json.dumps(body)), auth=f'wrk.headers["Authorization"] = "Bearer {key}"')
    )
    with running(stack):
        url = f"{stack.proxy_url}/v1/chat/completions"
        load = ["wrk", f"-t{min(args.connections, 2)}", f"-c{args.connections}", "-s", str(script), url]
        subprocess.run([*load, "-d3s"], capture_output=True, check=True)  # warm up
        wrk = subprocess.Popen([*load, f"-d{args.seconds + 4}s"], stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        outputs = [stack.workdir / f"spy-{pid}.txt" for pid in children(stack.gunicorn.pid)]
        samplers = [_sample(spy, out, args.seconds) for out in outputs]
        for sampler in samplers:
            sampler.wait()
        served = re.search(r"Requests/sec:\s+([\d.]+)", wrk.communicate()[0])
        sampled = [out for out in outputs if out.exists()]
        report = summarise(sampled, args.top)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for out in sampled:
                shutil.copy(out, args.save / out.name)
    kind = "streamed" if args.stream else "plain"
    rate = served.group(1) if served else "?"
    print(f"{stack.describe()}, wrk at {args.connections} connections, {kind}: {rate} req/s\n")
    print(report)


if __name__ == "__main__":
    main()
