"""The guard's two stages, shared by the scanner, training and evaluation.

Stage one, always: normalise, match the rules, score with the n-gram model (`classifier`), and
take the perplexity contrast (`perplexity`). Stage two, only where stage one is unsure (the gate:
a fast score over `gate_fast`, a text the n-gram model mostly does not know, such as another
language, or an improbable stretch): embed the text's window with the multilingual encoder
(`semantic`). The final score is the second-stage model's, over the embedding, the fast logit and
the contrast; a text the gate lets by is scored by the same model with the embedding's term at
its benign average, so every score is on one scale and one set of thresholds applies. Where
stage two runs, the score is the higher of its two heads (`semantic.SemanticModel`): the stacked
one, and the embedding alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import classifier, perplexity, semantic
from .normalize import Normalized, normalize
from .rules import find_rules

LOGIT_CLIP = 12.0
# Scales that put the fast logit and the contrast near the embedding's unit-length range.
FAST_LOGIT_SCALE = 6.0
CONTRAST_SCALE = 3.0


@dataclass
class View:
    """One text as stage one sees it."""

    normalized: Normalized
    hits: list

    @cached_property
    def grams(self) -> np.ndarray:
        return classifier.ngrams_of_lowered(self.normalized.lowered)

    @cached_property
    def window(self) -> str:
        return semantic.window(self.normalized.scan_text, self.hits[0][1].start() if self.hits else None)

    @property
    def fired(self) -> set[str]:
        return {rule.name for rule, _ in self.hits} | self.normalized.signals


def views(texts: list[str]) -> list[View]:
    out = []
    for text in texts:
        normalized = normalize(text)
        out.append(View(normalized, find_rules(normalized.scan_text, normalized.lowered)))
    return out


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return max(min(math.log(p / (1 - p)), LOGIT_CLIP), -LOGIT_CLIP)


def second_stage_inputs(vectors: np.ndarray, fast_logits, contrasts) -> np.ndarray:
    extra = np.column_stack(
        [
            np.asarray(fast_logits, dtype=np.float64) / FAST_LOGIT_SCALE,
            np.asarray(contrasts, dtype=np.float64) / CONTRAST_SCALE,
        ]
    )
    return np.hstack([np.asarray(vectors, dtype=np.float64), extra])


@dataclass
class Scored:
    fast: float  # stage one's probability
    coverage: float  # share of the text's n-grams the fast model knows
    contrast: float  # perplexity contrast
    imputed: float  # the final score without the embedding (its term at the benign average)
    full: float | None  # the final score with stage two, where it ran
    gated: bool
    view: View | None = None

    @property
    def score(self) -> float:
        return self.full if self.gated and self.full is not None else self.imputed


@dataclass(frozen=True)
class Gate:
    fast: float
    coverage: float
    contrast: float

    def opens(self, fast: float, coverage: float, contrast: float) -> bool:
        return fast >= self.fast or coverage <= self.coverage or contrast >= self.contrast


@dataclass
class Models:
    fast: classifier.LinearModel | None
    charlm: perplexity.CharModel | None
    second: semantic.SemanticModel | None

    @classmethod
    def shipped(cls) -> Models:
        return cls(classifier.shipped_model(), perplexity.shipped_model(), semantic.shipped_model())


def score_all(
    texts: list[str],
    *,
    gate: Gate | None = None,
    cache=None,
    force_second_stage: bool = False,
    models: Models | None = None,
) -> list[Scored]:
    """Both stages over `texts`, with the shipped models unless `models` are given. Without a
    second-stage model (or its encoder package), the score is stage one's alone."""
    models = models or Models.shipped()
    if cache is not None and models.second is None:
        models.second = semantic.SemanticModel.load()
    fast_model, charlm, second = models.fast, models.charlm, models.second
    seen = views(texts)
    results = []
    for view in seen:
        if fast_model is None:
            fast, coverage = 0.0, 1.0
        else:
            fast, coverage = fast_model.score_with_coverage(view.grams, view.fired)
        contrast = charlm.span_contrast(view.normalized.scan_text) if charlm is not None else 0.0
        if second is None:
            results.append(Scored(fast, coverage, contrast, fast, None, False, view))
            continue
        margin = second.margin_without_embedding(logit(fast) / FAST_LOGIT_SCALE, contrast / CONTRAST_SCALE)
        imputed = 1.0 / (1.0 + math.exp(-(margin + second.benign_embedding_margin)))
        gated = force_second_stage or (gate is not None and gate.opens(fast, coverage, contrast))
        results.append(Scored(fast, coverage, contrast, imputed, None, gated, view))
    if second is not None:
        todo = [i for i, r in enumerate(results) if r.gated]
        if todo:
            windows = [seen[i].window for i in todo]
            vectors = cache.embed(windows) if cache is not None else semantic.embed(windows)
            for i, vector in zip(todo, vectors, strict=True):
                r = results[i]
                margin = second.margin_without_embedding(logit(r.fast) / FAST_LOGIT_SCALE, r.contrast / CONTRAST_SCALE)
                stacked = 1.0 / (1.0 + math.exp(-(margin + second.embedding_margin(vector))))
                r.full = max(stacked, second.alone_score(vector))
    return results


def weighted_fpr(scores: np.ndarray, families: np.ndarray, threshold: float) -> float:
    """The benign families' false-positive rate, each family weighted by the square root of its
    size: between pooling (where one large easy family hides a hard small one) and a plain mean
    over families (where one row of a 16-row family moves the rate by 0.4 points)."""
    names, counts = np.unique(families, return_counts=True)
    weights = np.sqrt(counts)
    rates = np.array([(scores[families == n] >= threshold).mean() for n in names])
    return float((rates * weights).sum() / weights.sum())


def threshold_at_fpr(scores: np.ndarray, families: np.ndarray, fpr: float) -> float:
    """The lowest threshold whose `weighted_fpr` is at most `fpr`."""
    candidates = np.unique(scores)[::-1]
    chosen = float(candidates[0]) + 1e-9
    for t in candidates:
        if weighted_fpr(scores, families, t) > fpr:
            break
        chosen = float(t)
    return chosen


BLOCK_FPR = 0.002
SANITIZE_FPR = 0.01
# The log tier starts where sanitising does: `flagged` (any action but allow) then means the
# same rate of benign prompts as sanitising, 1%. A plan that raises its sanitise threshold keeps
# the band between as logged (`policy.Thresholds.overridden`).
LOG_FPR = SANITIZE_FPR
# Data carriers are fenced from this rate of benign prompts on: fencing data forwards it all.
CARRIER_SANITIZE_FPR = 0.05
CARRIER_ROLES = ("tool", "function", "document")
# A gate may cost at most this share of the recall that running stage two on everything gives.
GATE_RECALL_LOSS = 0.02


def choose_policy(
    scored: list[Scored], labels: np.ndarray, families: list[str], traffic: list[Scored] | None = None
) -> dict:
    """The gate and the thresholds, from validation rows scored with stage two forced on. The
    gate's cost, the share of benign prompts it opens for, is counted over the validation set's
    benign rows plus `traffic` (stage one's view of other benign prompts, such as the development
    set's, long documents included): a cost, so no detection figure is tuned on them."""
    full = np.array([r.full for r in scored])
    imputed = np.array([r.imputed for r in scored])
    fast = np.array([r.fast for r in scored])
    coverage = np.array([r.coverage for r in scored])
    contrast = np.array([r.contrast for r in scored])
    benign = labels == 0
    benign_families = np.array(families)[benign]

    traffic = traffic or []
    traffic_fast = np.array([r.fast for r in traffic])
    traffic_coverage = np.array([r.coverage for r in traffic])
    traffic_contrast = np.array([r.contrast for r in traffic])

    def evaluate(opened: np.ndarray, traffic_opened: np.ndarray) -> tuple[float, float, float, float]:
        final = np.where(opened, full, imputed)
        sanitize = threshold_at_fpr(final[benign], benign_families, SANITIZE_FPR)
        block = threshold_at_fpr(final[benign], benign_families, BLOCK_FPR)
        share = float(np.concatenate([opened[benign], traffic_opened]).mean())
        return float((final[~benign] >= sanitize).mean()), sanitize, block, share

    best_recall = evaluate(np.ones(len(labels), dtype=bool), np.ones(len(traffic), dtype=bool))[0]
    choice = None
    for gate_fast in np.quantile(fast[benign], [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99]):
        for gate_coverage in (-1.0, 0.0, 0.1, 0.2, 0.3):
            for gate_contrast in (np.inf, 2.5, 2.0, 1.5):
                opened = (fast >= gate_fast) | (coverage <= gate_coverage) | (contrast >= gate_contrast)
                traffic_opened = (
                    (traffic_fast >= gate_fast)
                    | (traffic_coverage <= gate_coverage)
                    | (traffic_contrast >= gate_contrast)
                )
                recall, sanitize, block, share = evaluate(opened, traffic_opened)
                if recall >= best_recall * (1 - GATE_RECALL_LOSS) and (choice is None or share < choice[0]):
                    choice = (share, float(gate_fast), gate_coverage, float(gate_contrast), sanitize, block, recall)
    share, gate_fast, gate_coverage, gate_contrast, sanitize, block, recall = choice
    opened = (fast >= gate_fast) | (coverage <= gate_coverage) | (contrast >= gate_contrast)
    final = np.where(opened, full, imputed)
    log = min(threshold_at_fpr(final[benign], benign_families, LOG_FPR), sanitize)
    carrier = min(threshold_at_fpr(final[benign], benign_families, CARRIER_SANITIZE_FPR), sanitize)
    return {
        "block": round(block, 6),
        "sanitize": round(sanitize, 6),
        "log": round(log, 6),
        "gate": {
            "fast": round(gate_fast, 6),
            "coverage": gate_coverage,
            "contrast": gate_contrast if np.isfinite(gate_contrast) else 1e9,
        },
        "roles": dict.fromkeys(CARRIER_ROLES, round(carrier, 6)),
        "chosen_on": "guard/validation/validation.jsonl",
        "validation": {
            "recall_at_sanitize": round(recall, 4),
            "recall_at_block": round(float((final[~benign] >= block).mean()), 4),
            "benign_share_through_gate": round(share, 4),
            "benign_rows_counted_for_the_share": int(benign.sum()) + len(traffic),
            "weighted_fpr_at_sanitize": round(weighted_fpr(final[benign], benign_families, sanitize), 4),
            "weighted_fpr_at_block": round(weighted_fpr(final[benign], benign_families, block), 4),
        },
    }
