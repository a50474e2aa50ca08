"""Scan text for prompt injection: normalise, match rules, score with the shipped model."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import classifier
from .normalize import Normalized, normalize
from .rules import SIGNAL_WEIGHTS, combine, find_rules

# Used when no model is shipped: the rules' own noisy-OR score.
RULES_ONLY_THRESHOLD = 0.5
EXCERPT_CHARS = 160


@dataclass
class Verdict:
    score: float
    threshold: float
    rules: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    excerpt: str = ""

    @property
    def flagged(self) -> bool:
        return self.score >= self.threshold

    def as_json(self) -> dict:
        return {"flagged": self.flagged, "score": round(self.score, 4), "rules": self.rules + self.signals}


def _excerpt(normalized: Normalized, hits) -> str:
    text = normalized.scan_text
    start = max(hits[0][1].start() - 40, 0) if hits else 0
    return text[start : start + EXCERPT_CHARS]


def analyse(texts: list[str]) -> tuple[list[Normalized], list[list]]:
    """Each text normalised, and its rule hits: (rule, first match) pairs."""
    normalized = [normalize(t) for t in texts]
    return normalized, [find_rules(n.scan_text, n.lowered) for n in normalized]


def rule_names(hits) -> set[str]:
    return {rule.name for rule, _ in hits}


def scan_many(texts: list[str], *, threshold: float | None = None) -> list[Verdict]:
    normalized, matched = analyse(texts)
    model = classifier.shipped_model()
    if model is not None:
        scores = [
            model.score(classifier.ngrams_of_lowered(n.lowered), rule_names(hits) | n.signals)
            for n, hits in zip(normalized, matched, strict=True)
        ]
        default = model.threshold
    else:
        scores = [
            combine([rule.weight for rule, _ in hits] + [SIGNAL_WEIGHTS[s] for s in n.signals])
            for n, hits in zip(normalized, matched, strict=True)
        ]
        default = RULES_ONLY_THRESHOLD
    return [
        Verdict(
            score=float(score),
            threshold=default if threshold is None else threshold,
            rules=[rule.name for rule, _ in hits],
            signals=sorted(n.signals),
            excerpt=_excerpt(n, hits),
        )
        for n, hits, score in zip(normalized, matched, scores, strict=True)
    ]


def scan(text: str, *, threshold: float | None = None) -> Verdict:
    return scan_many([text], threshold=threshold)[0]
