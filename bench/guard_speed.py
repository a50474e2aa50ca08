"""Guard cost: the fast layers on prompts of 2,000 tokens (normalise, rules, n-gram model,
perplexity contrast), p50 / p99 over distinct texts, so no verdict cache helps. Each prompt is dev
texts joined, then cut to exactly `--tokens` gpt-4o tokens; the stages are timed apart too. Then
stage two: its milliseconds per prompt (one window through the multilingual encoder), and the
share of benign prompts the gate sends to it, on the development set's benign rows (mostly
English) and on the validation set's (mostly other languages).

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
    stage_two(rows, args)


def measure(name: str, corpus: list[str], args) -> None:
    from guard import classifier, perplexity
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
    charlm = perplexity.shipped_model()
    stages: dict[str, list[float]] = {"normalise": [], "rules": [], "n-grams + score": [], "perplexity": []}
    fast_layers = []
    for prompt in prompts:
        started = time.perf_counter()
        normalized = normalize(prompt)
        normalised = time.perf_counter()
        find_rules(normalized.scan_text, normalized.lowered)
        ruled = time.perf_counter()
        model.score_with_coverage(classifier.ngrams_of_lowered(normalized.lowered), set())
        scored = time.perf_counter()
        charlm.span_contrast(normalized.scan_text)
        contrasted = time.perf_counter()
        laps = (normalised - started, ruled - normalised, scored - ruled, contrasted - scored)
        for stage, seconds in zip(stages, laps, strict=True):
            stages[stage].append(seconds * 1000)
        fast_layers.append((contrasted - started) * 1000)
    timings = []
    for prompt in prompts:
        started = time.perf_counter()
        scan(prompt)
        timings.append((time.perf_counter() - started) * 1000)
    print(
        f"{name}: {len(prompts)} distinct prompts of {args.tokens} tokens "
        f"(median {statistics.median(len(p) for p in prompts):.0f} chars): fast layers {_quantiles(fast_layers)}"
    )
    print(f"    whole scan (stage two where the gate opens) {_quantiles(timings)}")
    for stage, values in stages.items():
        print(f"    {stage:16} {_quantiles(values)}")


def stage_two(dev_rows: list[dict], args) -> None:
    from guard import semantic, stages
    from guard.scanner import scan_many
    from guard.validation import VALIDATION_PATH

    validation = [json.loads(line) for line in VALIDATION_PATH.open(encoding="utf-8")]
    windows = [v.window for v in stages.views([r["text"] for r in validation[:200]])]
    semantic.embed(windows[:5])
    timings = []
    for window in windows:
        started = time.perf_counter()
        semantic.embed([window])
        timings.append((time.perf_counter() - started) * 1000)
    print(f"stage two, one window (up to {2 * semantic.WINDOW_CHARS} chars): {_quantiles(timings)}")
    for name, rows in (("development set", dev_rows), ("validation set", validation)):
        benign = [r["text"] for r in rows if r["label"] == 0]
        share = sum(v.semantic for v in scan_many(benign)) / max(len(benign), 1)
        print(f"    share of the {name}'s {len(benign)} benign prompts sent to stage two: {share:.1%}")


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[max(int(len(ordered) * 0.99) - 1, 0)]
    return f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms"


if __name__ == "__main__":
    main()
