"""Train the shipped guard: `python -m guard.training.train [DEV_JSONL]`.

Training data: the development set (../shared/guard-eval/dev.jsonl; public sets, licences in its
README), the examples `generate.py` writes and the rows of `extra.py`. Never `guard/validation/`.

1. The fast layer: the n-gram and rule logistic regression (`guard/model/guard-model.npz`).
2. The character model behind the perplexity signal (`guard/model/charlm.npz`), on the benign rows.
3. The second stage (`guard/model/guard-semantic.npz`): a logistic regression over the
   multilingual embedding of the text's window, the fast layer's out-of-fold logit and the
   perplexity contrast, so it learns how far to trust each.
4. The policy (`guard/model/thresholds.json`): the gate in front of the second stage and the
   block, sanitise and log thresholds, all chosen on the validation set (`guard/validation/`),
   which no model above saw.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DEV = Path(__file__).resolve().parents[3] / "shared" / "guard-eval" / "dev.jsonl"
EMBEDDING_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "guard-embeddings.npz"


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")
    import django

    django.setup()


def generated_set():
    from guard.evaluation import Labelled, featurize
    from guard.training import extra
    from guard.training.generate import generate

    rows = generate() + extra.rows()
    return featurize(
        Labelled([r["text"] for r in rows], np.array([r["label"] for r in rows]), [r["source"] for r in rows])
    )


def progress(done: int, total: int) -> None:
    print(f"  embedded {done}/{total}", file=sys.stderr, flush=True)


def main(path: str | None = None) -> None:
    from guard import classifier, perplexity, policy, semantic, stages
    from guard.evaluation import featurize, fit_two_stage, load_jsonl
    from guard.validation import VALIDATION_PATH

    started = time.monotonic()
    dev = featurize(load_jsonl(path or DEFAULT_DEV))
    extra_rows = generated_set()

    cache = semantic.EmbeddingCache(EMBEDDING_CACHE)
    cache.embed([v.window for v in stages.views(dev.texts + extra_rows.texts)], progress=progress)
    models = fit_two_stage(dev, extra_rows, cache)
    models.fast.save()
    classifier.shipped_model.cache_clear()
    print(f"fast layer: {len(dev.labels) + len(extra_rows.labels)} rows, saved {classifier.MODEL_PATH}")
    models.charlm.save()
    perplexity.shipped_model.cache_clear()
    print(f"perplexity: contrast at 0.5% of benign rows = {models.charlm.contrast:.3f}, saved {perplexity.MODEL_PATH}")
    models.second.save()
    semantic.shipped_model.cache_clear()
    print(f"second stage: {len(dev.labels) + len(extra_rows.labels)} rows, saved {semantic.MODEL_PATH}")

    validation = load_jsonl(VALIDATION_PATH)
    scored = stages.score_all(validation.texts, cache=cache, force_second_stage=True, models=models)
    benign_traffic = [t for t, label in zip(dev.texts, dev.labels, strict=True) if label == 0]
    traffic = stages.score_all(benign_traffic, models=models)
    chosen = stages.choose_policy(scored, validation.labels, validation.families, traffic)
    policy.THRESHOLDS_PATH.write_text(json.dumps(chosen, indent=2) + "\n")
    policy.shipped.cache_clear()
    policy.shipped_policy.cache_clear()
    policy.shipped_role_sanitize.cache_clear()
    print(f"policy chosen on validation: {json.dumps(chosen)}")
    print(f"({time.monotonic() - started:.0f}s)")


if __name__ == "__main__":
    _setup_django()
    main(sys.argv[1] if len(sys.argv) > 1 else None)
