"""Train the shipped guard model: `python -m guard.training.train [DEV_JSONL]`.

Data: the development set (../shared/guard-eval/dev.jsonl; public sets, licences in its README)
plus the examples `generate.py` writes. The threshold is chosen on that training data at 1%
false positives on its benign rows, and shipped with the weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import sparse

from guard import classifier
from guard.evaluation import Labelled, featurize, fit_with_threshold, load_jsonl
from guard.training.generate import generate

DEFAULT_DEV = Path(__file__).resolve().parents[3] / "shared" / "guard-eval" / "dev.jsonl"


def generated_set() -> Labelled:
    rows = generate()
    return featurize(
        Labelled([r["text"] for r in rows], np.array([r["label"] for r in rows]), [r["source"] for r in rows])
    )


def main(path: str | None = None) -> None:
    dev = featurize(load_jsonl(path or DEFAULT_DEV))
    extra = generated_set()
    x = sparse.vstack([dev.x, extra.x], format="csr")
    labels = np.concatenate([dev.labels, extra.labels])
    model = fit_with_threshold(x, labels)
    model.save()
    print(f"trained on {len(labels)} rows; threshold {model.threshold:.4f}; saved {classifier.MODEL_PATH}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
