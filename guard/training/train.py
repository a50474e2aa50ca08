"""Train the shipped guard model: `python -m guard.training.train [DEV_JSONL]`.

Data: the development set (../shared/guard-eval/dev.jsonl; public sets, licences in its README)
plus the examples `generate.py` writes. The threshold is chosen on that training data at 1%
false positives on its benign rows, and shipped with the weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from guard import classifier
from guard.evaluation import Labelled, featurize, fit, load_jsonl
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
    model = fit(dev.x, dev.labels, extra)
    model.save()
    rows = len(dev.labels) + len(extra.labels)
    print(f"trained on {rows} rows; threshold {model.threshold:.4f}; saved {classifier.MODEL_PATH}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
