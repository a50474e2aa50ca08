"""Guard cost: scanning prompts of 2,000 tokens (normalise, rules, classifier), p50 / p99 over
distinct texts, so no verdict cache helps. Each prompt is dev texts joined, then cut to exactly
`--tokens` gpt-4o tokens; the stages are timed apart too.

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
    from guard import classifier
    from guard.normalize import normalize
    from guard.rules import find_rules
    from guard.scanner import scan
    from metering.tokens import encoding_for

    encoding = encoding_for("gpt-4o")
    rng = random.Random(5)
    prompts = []
    for _ in range(args.iterations):
        tokens: list[int] = []
        while len(tokens) < args.tokens:
            tokens += encoding.encode(rng.choice(corpus) + "\n\n", disallowed_special=())
        prompts.append(encoding.decode(tokens[: args.tokens]))
    for prompt in prompts[:20]:
        scan(prompt + " warm-up")
    model = classifier.shipped_model()
    stages: dict[str, list[float]] = {"normalise": [], "rules": [], "n-grams + score": []}
    for prompt in prompts:
        started = time.perf_counter()
        normalized = normalize(prompt)
        normalised = time.perf_counter()
        find_rules(normalized.scan_text, normalized.lowered)
        ruled = time.perf_counter()
        model.score(classifier.ngrams_of_lowered(normalized.lowered), set())
        scored = time.perf_counter()
        for stage, seconds in zip(stages, (normalised - started, ruled - normalised, scored - ruled), strict=True):
            stages[stage].append(seconds * 1000)
    timings = []
    for prompt in prompts:
        started = time.perf_counter()
        scan(prompt)
        timings.append((time.perf_counter() - started) * 1000)
    print(
        f"{name}: {len(prompts)} distinct prompts of {args.tokens} tokens "
        f"(median {statistics.median(len(p) for p in prompts):.0f} chars): scan {_quantiles(timings)}"
    )
    for stage, values in stages.items():
        print(f"    {stage:16} {_quantiles(values)}")


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[max(int(len(ordered) * 0.99) - 1, 0)]
    return f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms"


if __name__ == "__main__":
    main()
