"""The small learned layer: word 1-2-grams plus the rule and normaliser signals, fed to a logistic
regression. Nothing is downloaded: the weights ship in `guard/model/guard-model.npz`.

Training and scanning compute the same features, by the same function (`ngrams`): each n-gram
counts 1 / (number of n-grams in the text + SHORT_TEXT_PRIOR), each rule or signal that fired counts
INDICATOR_SCALE. So a scan is one dictionary lookup per n-gram (no hashing, no sparse matrix),
and its score equals the training-time score of the same text exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise, repeat
from pathlib import Path

import numpy as np
from scipy import sparse

from .rules import RULES, SIGNAL_WEIGHTS

MODEL_PATH = Path(__file__).resolve().parent / "model" / "guard-model.npz"
INDICATOR_SCALE = 4.0
INDICATORS = [rule.name for rule in RULES] + list(SIGNAL_WEIGHTS)
# Each n-gram counts 1 / (len(n-grams) + SHORT_TEXT_PRIOR): close to the text's mean n-gram weight.
# An L2 norm instead (1 / sqrt(len)) lets a long text's many common words add up, so that length
# itself becomes evidence; the prior keeps a one-word text ("hi") from scoring as its one word.
SHORT_TEXT_PRIOR = 8
# An n-gram seen in fewer training texts than this gets no weight: it would only be memorised.
MIN_TEXTS_PER_NGRAM = 2
DEFAULT_C = 30.0

_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]+")


def ngrams(text: str) -> list[str]:
    # The words of `\w+`, found faster: punctuation to spaces, then a C-speed split.
    words = _NOT_WORD_OR_SPACE.sub(" ", text.lower()).split()
    return words + list(map(" ".join, pairwise(words)))


@dataclass
class Vocabulary:
    """N-gram → column, grown as texts are featurised (the labels are never looked at)."""

    index: dict[str, int] = field(default_factory=dict)

    def columns(self, grams: list[str]) -> list[int]:
        index = self.index
        return [index.setdefault(g, len(index)) for g in grams]

    @property
    def width(self) -> int:
        return len(INDICATORS) + len(self.index)


def features(grams_per_text: list[list[str]], indicators: list[set[str]], vocabulary: Vocabulary) -> sparse.csr_matrix:
    """Training matrix: the indicator columns first, then one column per n-gram."""
    rows, cols, values = [], [], []
    offset = len(INDICATORS)
    for row, (grams, fired) in enumerate(zip(grams_per_text, indicators, strict=True)):
        for column, name in enumerate(INDICATORS):
            if name in fired:
                rows.append(row), cols.append(column), values.append(INDICATOR_SCALE)
        if grams:
            weight = 1.0 / (len(grams) + SHORT_TEXT_PRIOR)
            for column in vocabulary.columns(grams):
                rows.append(row), cols.append(offset + column), values.append(weight)
    shape = (len(grams_per_text), vocabulary.width)
    return sparse.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float64)


def widen(x: sparse.csr_matrix, width: int) -> sparse.csr_matrix:
    """The same rows with columns added for n-grams other texts brought into the vocabulary."""
    if x.shape[1] == width:
        return x
    return sparse.csr_matrix((x.data, x.indices, x.indptr), shape=(x.shape[0], width))


@dataclass
class LinearModel:
    """Weights by name: `indicator_weights` per rule or signal, `ngram_weights` per n-gram."""

    indicator_weights: dict[str, float]
    ngram_weights: dict[str, float]
    intercept: float
    threshold: float
    coef: np.ndarray | None = None  # the training-time column vector, for scoring matrices

    def scores(self, x: sparse.csr_matrix) -> np.ndarray:
        coef = self.coef[: x.shape[1]]
        if len(coef) < x.shape[1]:  # columns for n-grams first seen after training weigh nothing
            coef = np.pad(coef, (0, x.shape[1] - len(coef)))
        return 1.0 / (1.0 + np.exp(-(x @ coef + self.intercept)))

    def score(self, grams: list[str], fired: set[str]) -> float:
        weights = self.indicator_weights
        margin = self.intercept + INDICATOR_SCALE * sum(weights[name] for name in fired if name in weights)
        if grams:
            margin += sum(map(self.ngram_weights.get, grams, repeat(0.0))) / (len(grams) + SHORT_TEXT_PRIOR)
        return 1.0 / (1.0 + math.exp(-margin))

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.ngram_weights)
        np.savez_compressed(
            path,
            ngrams=np.frombuffer("\n".join(names).encode("utf-8"), dtype=np.uint8),
            ngram_weights=np.array([self.ngram_weights[n] for n in names], dtype=np.float32),
            indicators=np.array(INDICATORS),
            indicator_weights=np.array([self.indicator_weights[n] for n in INDICATORS], dtype=np.float64),
            intercept=np.array([self.intercept]),
            threshold=np.array([self.threshold]),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LinearModel:
        data = np.load(path)
        if list(data["indicators"]) != INDICATORS:
            raise RuntimeError("guard model was trained with other rules; run `python -m guard.training.train`")
        names = data["ngrams"].tobytes().decode("utf-8").split("\n")
        return cls(
            indicator_weights=dict(zip(INDICATORS, data["indicator_weights"].tolist(), strict=True)),
            ngram_weights=dict(zip(names, data["ngram_weights"].tolist(), strict=True)),
            intercept=float(data["intercept"][0]),
            threshold=float(data["threshold"][0]),
        )


def train(x: sparse.csr_matrix, labels: np.ndarray, vocabulary: Vocabulary, *, c: float = DEFAULT_C) -> LinearModel:
    from sklearn.linear_model import LogisticRegression

    texts_per_column = np.asarray((x > 0).sum(axis=0)).ravel()
    keep = texts_per_column >= MIN_TEXTS_PER_NGRAM
    keep[: len(INDICATORS)] = True
    x = x @ sparse.diags(keep.astype(np.float64))
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", solver="liblinear")
    model.fit(x, labels)
    coef = model.coef_[0] * keep
    offset = len(INDICATORS)
    names = sorted(vocabulary.index, key=vocabulary.index.get)[: len(coef) - offset]
    return LinearModel(
        indicator_weights={name: float(coef[i]) for i, name in enumerate(INDICATORS)},
        ngram_weights={name: float(w) for name, w in zip(names, coef[offset:].tolist(), strict=True) if w != 0.0},
        intercept=float(model.intercept_[0]),
        threshold=0.5,
        coef=coef,
    )


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
