"""Guard cost: scanning prompts of about 2,000 tokens (normalise, rules, classifier), p50 / p99
over distinct texts, so no verdict cache helps.

    python bench/guard_speed.py [--iterations 500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()
    import django

    django.setup()
    dev = ROOT.parent / "shared" / "guard-eval" / "dev.jsonl"
    rows = [json.loads(line) for line in dev.open()] if dev.exists() else [{"text": "The quick fox. " * 50, "label": 0}]
    for name, corpus in (
        ("benign text", [r["text"] for r in rows if r["label"] == 0]),
        ("attack-dense text (half injections)", [r["text"] for r in rows]),
    ):
        measure(name, corpus, args)


def measure(name: str, corpus: list[str], args) -> None:
    from guard.scanner import scan
    from metering.tokens import count_text

    rng = random.Random(5)
    prompts = []
    for _ in range(args.iterations):
        parts, tokens = [], 0
        while tokens < args.tokens:
            text = rng.choice(corpus)
            parts.append(text)
            tokens += count_text(text, "gpt-4o")
        prompts.append("\n\n".join(parts))
    sizes = [count_text(p, "gpt-4o") for p in prompts]
    for prompt in prompts[:20]:
        scan(prompt + " warm-up")
    timings = []
    for prompt in prompts:
        started = time.perf_counter()
        scan(prompt)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p99 = timings[int(len(timings) * 0.99) - 1]
    print(
        f"{name}: {len(prompts)} distinct prompts, median {statistics.median(sizes):.0f} tokens "
        f"({statistics.median(len(p) for p in prompts):.0f} chars): "
        f"p50 {statistics.median(timings):.2f} ms, p99 {p99:.2f} ms, max {timings[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
