"""The small learned layer: hashed word 1-2-grams plus the rule and normaliser signals, fed to a
logistic regression. The weights ship in `guard/model/guard-model.npz` (a few hundred kB);
nothing is downloaded. Word features, not character n-grams: they cost under a millisecond on a
2,000-token prompt, where character n-grams cost five.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

from .normalize import Normalized
from .rules import RULES, SIGNAL_WEIGHTS

MODEL_PATH = Path(__file__).resolve().parent / "model" / "guard-model.npz"
N_HASHED = 2**18
# Rule and signal indicators sit beside the L2-normalised text features at this scale.
INDICATOR_SCALE = 4.0
INDICATORS = [rule.name for rule in RULES] + list(SIGNAL_WEIGHTS)

_vectorizer = HashingVectorizer(
    analyzer="word",
    ngram_range=(1, 2),
    n_features=N_HASHED,
    alternate_sign=False,
    norm="l2",
    lowercase=True,
    token_pattern=r"(?u)\b\w+\b",
)


def indicator_row(rule_names: set[str], signals: set[str]) -> np.ndarray:
    row = np.zeros(len(INDICATORS), dtype=np.float32)
    for index, name in enumerate(INDICATORS):
        if name in rule_names or name in signals:
            row[index] = INDICATOR_SCALE
    return row


def features(normalized: list[Normalized], rule_names: list[set[str]]) -> sparse.csr_matrix:
    text = _vectorizer.transform([n.scan_text for n in normalized])
    flags = np.vstack([indicator_row(r, n.signals) for n, r in zip(normalized, rule_names, strict=True)])
    return sparse.hstack([text, sparse.csr_matrix(flags)], format="csr")


@dataclass
class LinearModel:
    coef: np.ndarray
    intercept: float
    threshold: float

    def scores(self, x: sparse.csr_matrix) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            coef=self.coef.astype(np.float16),
            intercept=np.array([self.intercept]),
            threshold=np.array([self.threshold]),
            indicators=np.array(INDICATORS),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LinearModel:
        data = np.load(path)
        if list(data["indicators"]) != INDICATORS:
            raise RuntimeError("guard model was trained with other rules; run `python -m guard.training.train`")
        return cls(data["coef"].astype(np.float32), float(data["intercept"][0]), float(data["threshold"][0]))


DEFAULT_C = 0.3


def train(x: sparse.csr_matrix, labels: np.ndarray, *, c: float = DEFAULT_C) -> LinearModel:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", solver="liblinear")
    model.fit(x, labels)
    return LinearModel(model.coef_[0].astype(np.float32), float(model.intercept_[0]), 0.5)


def threshold_at_fpr(benign_scores: np.ndarray, fpr: float = 0.01) -> float:
    """The lowest threshold that flags at most `fpr` of the benign rows."""
    if len(benign_scores) == 0:
        return 0.5
    ordered = np.sort(benign_scores)
    allowed = int(np.floor(fpr * len(ordered)))
    return float(ordered[len(ordered) - allowed - 1]) + 1e-9 if allowed < len(ordered) else 0.0


@lru_cache(maxsize=1)
def shipped_model() -> LinearModel | None:
    return LinearModel.load() if MODEL_PATH.exists() else None
