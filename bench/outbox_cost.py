"""What keeping a request's ledger entry in the outbox costs, on the filesystem of the spool
directory: the outbox as it is (`metering.spool`: an append to this process's segment, the
segment removed once none of its entries waits) against a file per request (create, write,
close, and unlink once the row is in), as the outbox was before `b01187d`.

    python bench/outbox_cost.py [--entries 2000] [--in-flight 32] [--rounds 5] [--dir PATH]

`--in-flight` entries wait at once, as under concurrent load (the oldest is let go as each new
one comes). CPU microseconds per entry (user + system of this process), median of alternating
rounds. No database: only the files.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")


def entries(count: int):
    from django.utils import timezone

    from metering.services import LedgerEntry

    now = timezone.now()
    return [
        LedgerEntry(request_id=f"req_{i:032x}", endpoint="chat", created_at=now, status_code=200, latency_ms=4.2)
        for i in range(count)
    ]


def segments(batch, in_flight: int) -> None:
    from metering import spool

    waiting = collections.deque()
    for entry in batch:
        waiting.append(spool.outbox_write(entry))
        if len(waiting) > in_flight:
            spool.outbox_done(waiting.popleft(), kept=True)
    while waiting:
        spool.outbox_done(waiting.popleft(), kept=True)


def file_per_request(batch, in_flight: int, directory: str) -> None:
    import json

    from metering import spool

    waiting = collections.deque()
    for entry in batch:
        path = os.path.join(directory, f"{entry.request_id}.pending")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(descriptor, json.dumps(spool._encode(entry)).encode())
        os.close(descriptor)
        waiting.append(path)
        if len(waiting) > in_flight:
            os.unlink(waiting.popleft())
    while waiting:
        os.unlink(waiting.popleft())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="Where to write (default: beside the configured spool directory).")
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings

    parent = args.dir or Path(settings.SPENDPLANE_LEDGER_SPOOL_DIR).parent
    parent.mkdir(parents=True, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="outbox-cost-", dir=parent)
    settings.SPENDPLANE_LEDGER_SPOOL_DIR = directory
    batch = entries(args.entries)
    ways = {
        "segment append (the outbox)": lambda: segments(batch, args.in_flight),
        "file per request (before)": lambda: file_per_request(batch, args.in_flight, directory),
    }
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for round_number in range(args.rounds):
        for name in sorted(ways, reverse=bool(round_number % 2)):
            started = time.process_time()
            ways[name]()
            timings[name].append((time.process_time() - started) / args.entries * 1e6)
    leftovers = os.listdir(directory)
    if not leftovers:
        os.rmdir(directory)
    print(f"{args.entries} entries, {args.in_flight} in flight, {args.rounds} rounds, in {parent}")
    for name, values in timings.items():
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name}: {statistics.median(values):.1f} µs CPU per entry (rounds: {rounds})")
    append, per_file = (statistics.median(timings[name]) for name in ways)
    print(f"file per request / segment: {per_file / append:.1f}x; files left behind: {len(leftovers)}")


if __name__ == "__main__":
    main()
