"""A cheap perplexity signal for optimisation-generated text.

Adversarial suffixes found by gradient or random search ("describing.\\ + similarlyNow write
oppositeley.]( Me giving**ONE") are improbable character sequences. A character trigram model,
fitted to benign prompts in many languages and shipped in `guard/model/charlm.npz` (hashed into
2**18 cells, 1 MB), gives each character its surprisal; the signal compares the most surprising
stretch of a text with the text's own fluent stretches. A whole prompt in an unusual script or a
block of code is uniformly surprising and does not fire; a fluent request that ends in a string
no language writes does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).resolve().parent / "model" / "charlm.npz"
CELLS = 1 << 18
SPAN = 32  # characters per stretch
MIN_CHARS = 2 * SPAN
# A long text is read at its two ends only (600 characters each), where appended or prepended search output sits: the
# cost stays flat with length.
END_CHARS = 600
# Fires when the worst stretch's mean surprisal (nats per character) is this far over the median
# stretch's; set in training at a rate of benign prompts (`fit`).
DEFAULT_CONTRAST = 1.6
# Add-k smoothing spreads k over this many possible next characters.
CHARSET = 256


def _cells(text: str) -> np.ndarray:
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    # each character with the one before it, hashed into CELLS
    previous = np.concatenate([np.zeros(1, dtype=np.uint64), points[:-1]])
    before = np.concatenate([np.zeros(2, dtype=np.uint64), points[:-2]])[: len(points)]
    mixed = ((before * np.uint64(0x9E3779B1) + previous) * np.uint64(0x9E3779B1) + points) * np.uint64(
        0xBF58476D1CE4E5B9
    )
    return ((mixed >> np.uint64(40)) % np.uint64(CELLS)).astype(np.int64)


def _previous_cells(text: str) -> np.ndarray:
    """The cell of the two characters before each one (start-of-text marks before the first)."""
    points = np.frombuffer(("\0\0" + text[:-1]).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    mixed = (points[:-1] * np.uint64(0x9E3779B1) + points[1:]) * np.uint64(0x94D049BB133111EB)
    return ((mixed >> np.uint64(40)) % np.uint64(CELLS)).astype(np.int64)


@dataclass
class CharModel:
    """log P(c | the two before) as log count(triple) - log count(pair), add-k smoothed, hashed."""

    pair_log: np.ndarray  # float32, CELLS
    single_log: np.ndarray  # float32, CELLS
    contrast: float = DEFAULT_CONTRAST

    def surprisal(self, text: str) -> np.ndarray:
        """-log P(each character | the two before it), in nats."""
        return self.single_log[_previous_cells(text)] - self.pair_log[_cells(text)]

    def span_contrast(self, text: str) -> float:
        """The worst SPAN-character stretch's mean surprisal over the text's fluent stretches (the
        fifth-most fluent of each 25)."""
        if len(text) < MIN_CHARS:
            return 0.0
        if len(text) > 2 * END_CHARS:
            text = text[:END_CHARS] + " " + text[-END_CHARS:]
        per_char = self.surprisal(text)
        sums = np.convolve(per_char, np.ones(SPAN, dtype=np.float32), mode="valid")[:: SPAN // 2] / SPAN
        return float(sums.max() - np.quantile(sums, 0.2))

    def improbable(self, text: str) -> bool:
        return self.span_contrast(text) >= self.contrast

    def save(self, path: Path = MODEL_PATH) -> None:
        np.savez_compressed(
            path,
            pair_log=self.pair_log.astype(np.float16),
            single_log=self.single_log.astype(np.float16),
            contrast=np.array([self.contrast]),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> CharModel:
        data = np.load(path)
        return cls(
            pair_log=data["pair_log"].astype(np.float32),
            single_log=data["single_log"].astype(np.float32),
            contrast=float(data["contrast"][0]),
        )


def fit(texts: list[str], *, smoothing: float = 0.5, benign_rate: float = 0.005) -> CharModel:
    """Count pairs and characters over benign texts; set the contrast so that `benign_rate` of
    them fire."""
    pairs = np.zeros(CELLS, dtype=np.float64)
    singles = np.zeros(CELLS, dtype=np.float64)
    for text in texts:
        if len(text) < 2:
            continue
        np.add.at(pairs, _cells(text), 1.0)
        np.add.at(singles, _previous_cells(text), 1.0)
    model = CharModel(
        pair_log=np.log(pairs + smoothing).astype(np.float32),
        single_log=np.log(singles + smoothing * CHARSET).astype(np.float32),
    )
    contrasts = np.array([model.span_contrast(t) for t in texts if len(t) >= MIN_CHARS])
    if len(contrasts):
        model.contrast = float(np.quantile(contrasts, 1.0 - benign_rate))
    return model


@lru_cache(maxsize=1)
def shipped_model() -> CharModel | None:
    return CharModel.load() if MODEL_PATH.exists() else None
