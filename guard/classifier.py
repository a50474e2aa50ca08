"""The small learned layer: word 1-2-grams plus the rule and normaliser signals, fed to a logistic
regression. Nothing is downloaded: the weights ship in `guard/model/guard-model.npz`.

Training and scanning compute the same features, by the same function (`ngrams`): each word
1-gram and 2-gram is a 64-bit hash, computed for the whole text at once with numpy (a rolling
polynomial hash over the code points, no Python loop per word); each counts
NGRAM_SCALE / (number of n-grams + SHORT_TEXT_PRIOR), and each rule or signal that fired counts
INDICATOR_SCALE. The model ships the weighted hashes sorted, so a scan looks every n-gram up with
one `searchsorted`, and its score equals the training-time score of the same text. At 64 bits, two
n-grams sharing a hash is not a practical concern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

from .rules import RULES, SIGNAL_WEIGHTS

MODEL_PATH = Path(__file__).resolve().parent / "model" / "guard-model.npz"
INDICATOR_SCALE = 4.0
INDICATORS = [rule.name for rule in RULES] + list(SIGNAL_WEIGHTS)
# Each n-gram counts NGRAM_SCALE / (len(n-grams) + SHORT_TEXT_PRIOR): close to the text's mean
# n-gram weight.
# An L2 norm instead (1 / sqrt(len)) lets a long text's many common words add up, so that length
# itself becomes evidence; the prior keeps a one-word text ("hi") from scoring as its one word.
SHORT_TEXT_PRIOR = 12
# An n-gram seen in fewer training texts than this gets no weight: it would only be memorised.
MIN_TEXTS_PER_NGRAM = 2
# Nor does one in more than this share of them ("this", "a", "is the"): with weights that large, a
# few function words decided a short prompt, which is the style of a dataset, not an attack.
MAX_TEXT_SHARE_PER_NGRAM = 0.05
DEFAULT_C = 10.0
# The n-gram columns' scale beside the indicators' (INDICATOR_SCALE): at 6, n-gram weights are
# regularised 36x less than at 1, which lifted 5-fold recall at 1% FPR from 0.83 to 0.90 while
# leave-one-family-out held (`guard_eval`). Contrast rows in the generated set keep that capacity
# off a document's template words (a WHOIS record's "Admin" fields, say).
NGRAM_SCALE = 6.0

_MULTIPLIER = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_INVERSE = np.uint64(pow(int(_MULTIPLIER), -1, 2**64))
_BIGRAM_SALT = np.uint64(0x9E3779B97F4A7C15)
# Word characters: ASCII letters, digits and "_", and every other code point that is not
# punctuation, a symbol or a space in the ranges below.
_ASCII_WORD = np.zeros(128, dtype=bool)
for _ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _ASCII_WORD[ord(_ch)] = True
_NON_WORD_RANGES = np.array(
    [(0x80, 0xBF), (0xD7, 0xD7), (0xF7, 0xF7), (0x2000, 0x206F), (0x2190, 0x2BFF), (0x3000, 0x303F),
     (0xFE30, 0xFE4F), (0xFF00, 0xFF0F), (0xFF1A, 0xFF20), (0x1F000, 0x1FAFF)],
    dtype=np.uint32,
)  # fmt: skip


def _powers_of(base: np.uint64, size: int) -> np.ndarray:
    return np.concatenate([np.ones(1, dtype=np.uint64), np.cumprod(np.full(size - 1, base, dtype=np.uint64))])


class _Powers:
    """MULTIPLIER**i and its inverse for i < n, grown on demand (uint64 arithmetic wraps mod 2**64).
    Both arrays are swapped in as one tuple, so a thread never sees one grown and not the other."""

    def __init__(self, size: int = 1 << 16) -> None:
        self.table = (_powers_of(_MULTIPLIER, size), _powers_of(_INVERSE, size))

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        up, down = self.table
        if len(up) < n:
            size = max(n, 2 * len(up))
            up, down = self.table = (_powers_of(_MULTIPLIER, size), _powers_of(_INVERSE, size))
        return up[:n], down[:n]


_POWERS = _Powers()


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the polynomial hash over all 64 bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ngrams(text: str) -> np.ndarray:
    """The text's lower-cased word 1-grams then 2-grams, as 64-bit hashes."""
    return ngrams_of_lowered(text.lower())


def ngrams_of_lowered(lowered: str) -> np.ndarray:
    """`ngrams`, for a text already lower-cased (`Normalized.lowered`)."""
    points = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if not len(points):
        return np.empty(0, dtype=np.uint64)
    is_word = _ASCII_WORD[np.minimum(points, 127)]
    wide = points >= 128
    if wide.any():
        wide_points = points[wide]
        punctuation = np.zeros(len(wide_points), dtype=bool)
        for low, high in _NON_WORD_RANGES:
            punctuation |= (wide_points >= low) & (wide_points <= high)
        is_word[wide] = ~punctuation
    edges = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        return np.empty(0, dtype=np.uint64)
    up, down = _POWERS.upto(len(points))
    prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(points.astype(np.uint64) * up, dtype=np.uint64)])
    words = _mix((prefix[ends] - prefix[starts]) * down[starts])
    pairs = _mix(words[:-1] * _MULTIPLIER + words[1:] + _BIGRAM_SALT)
    return np.concatenate([words, pairs])


@dataclass
class Vocabulary:
    """N-gram hash → column, grown as texts are featurised (the labels are never looked at)."""

    index: dict[int, int] = field(default_factory=dict)

    def columns(self, grams: np.ndarray) -> list[int]:
        index = self.index
        return [index.setdefault(g, len(index)) for g in grams.tolist()]

    def keys(self) -> np.ndarray:
        """The hash of each column, in column order."""
        keys = np.empty(len(self.index), dtype=np.uint64)
        keys[list(self.index.values())] = list(self.index)
        return keys

    @property
    def width(self) -> int:
        return len(INDICATORS) + len(self.index)


def features(grams_per_text: list[np.ndarray], indicators: list[set[str]], vocabulary: Vocabulary) -> sparse.csr_matrix:
    """Training matrix: the indicator columns first, then one column per n-gram."""
    rows, cols, values = [], [], []
    offset = len(INDICATORS)
    for row, (grams, fired) in enumerate(zip(grams_per_text, indicators, strict=True)):
        for column, name in enumerate(INDICATORS):
            if name in fired:
                rows.append(row), cols.append(column), values.append(INDICATOR_SCALE)
        if len(grams):
            weight = NGRAM_SCALE / (len(grams) + SHORT_TEXT_PRIOR)
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
    """Weights by name for the rules and signals, by sorted hash for the n-grams."""

    indicator_weights: dict[str, float]
    ngram_keys: np.ndarray  # uint64, sorted
    ngram_weights: np.ndarray  # float32, aligned with ngram_keys
    intercept: float
    threshold: float
    coef: np.ndarray | None = None  # the training-time column vector, for scoring matrices

    def scores(self, x: sparse.csr_matrix) -> np.ndarray:
        coef = self.coef[: x.shape[1]]
        if len(coef) < x.shape[1]:  # columns for n-grams first seen after training weigh nothing
            coef = np.pad(coef, (0, x.shape[1] - len(coef)))
        return 1.0 / (1.0 + np.exp(-(x @ coef + self.intercept)))

    def score(self, grams: np.ndarray, fired: set[str]) -> float:
        return self.score_with_coverage(grams, fired)[0]

    def score_with_coverage(self, grams: np.ndarray, fired: set[str]) -> tuple[float, float]:
        """The score, and the share of the text's n-grams the model has a weight for (low for a
        language or a style it was not trained on: where it is unsure)."""
        weights = self.indicator_weights
        coverage = 1.0
        # fsum: the same total whatever order the set iterates in (it varies between processes)
        margin = self.intercept + INDICATOR_SCALE * math.fsum(weights[name] for name in fired if name in weights)
        if len(grams) and len(self.ngram_keys):
            grams = np.sort(grams)  # sorted queries walk the keys in order: a third of the lookup time
            at = np.searchsorted(self.ngram_keys, grams)
            np.minimum(at, len(self.ngram_keys) - 1, out=at)
            known = at[self.ngram_keys[at] == grams]
            coverage = len(known) / len(grams)
            total = float(self.ngram_weights[known].sum(dtype=np.float64))
            margin += NGRAM_SCALE * total / (len(grams) + SHORT_TEXT_PRIOR)
        return 1.0 / (1.0 + math.exp(-margin)), coverage

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            ngram_keys=self.ngram_keys,
            ngram_weights=self.ngram_weights.astype(np.float32),
            indicators=np.array(INDICATORS),
            indicator_weights=np.array([self.indicator_weights[n] for n in INDICATORS], dtype=np.float64),
            intercept=np.array([self.intercept]),
            threshold=np.array([self.threshold]),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LinearModel:
        data = np.load(path)
        if list(data["indicators"]) != INDICATORS or "ngram_keys" not in data:
            raise RuntimeError("guard model was trained with other rules; run `python -m guard.training.train`")
        return cls(
            indicator_weights=dict(zip(INDICATORS, data["indicator_weights"].tolist(), strict=True)),
            ngram_keys=data["ngram_keys"],
            ngram_weights=data["ngram_weights"],
            intercept=float(data["intercept"][0]),
            threshold=float(data["threshold"][0]),
        )


def train(x: sparse.csr_matrix, labels: np.ndarray, vocabulary: Vocabulary, *, c: float = DEFAULT_C) -> LinearModel:
    from sklearn.linear_model import LogisticRegression

    texts_per_column = np.asarray((x > 0).sum(axis=0)).ravel()
    keep = (texts_per_column >= MIN_TEXTS_PER_NGRAM) & (texts_per_column <= MAX_TEXT_SHARE_PER_NGRAM * x.shape[0])
    keep[: len(INDICATORS)] = True
    x = x @ sparse.diags(keep.astype(np.float64))
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", solver="liblinear")
    model.fit(x, labels)
    coef = model.coef_[0] * keep
    offset = len(INDICATORS)
    keys = vocabulary.keys()[: len(coef) - offset]
    weighted = coef[offset:] != 0.0
    order = np.argsort(keys[weighted])
    return LinearModel(
        indicator_weights={name: float(coef[i]) for i, name in enumerate(INDICATORS)},
        ngram_keys=keys[weighted][order],
        ngram_weights=coef[offset:][weighted][order].astype(np.float32),
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
