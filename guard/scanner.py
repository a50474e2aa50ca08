"""Scan text for prompt injection: normalise, match rules, score with the shipped model."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import classifier
from .normalize import Normalized, normalize
from .rules import SIGNAL_WEIGHTS, combine, match_rules

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


def _excerpt(normalized: Normalized, rules) -> str:
    text = normalized.scan_text
    for rule in rules:
        match = rule.search(text, text.lower()) if len(text.lower()) == len(text) else rule.pattern.search(text)
        if match:
            start = max(match.start() - 40, 0)
            return text[start : start + EXCERPT_CHARS]
    return text[:EXCERPT_CHARS]


def analyse(texts: list[str]) -> tuple[list[Normalized], list[list]]:
    normalized = [normalize(t) for t in texts]
    return normalized, [match_rules(n.scan_text) for n in normalized]


def scan_many(texts: list[str], *, threshold: float | None = None) -> list[Verdict]:
    normalized, matched = analyse(texts)
    model = classifier.shipped_model()
    if model is not None:
        x = classifier.features(normalized, [{r.name for r in rules} for rules in matched])
        scores = model.scores(x).tolist()
        default = model.threshold
    else:
        scores = [
            combine([r.weight for r in rules] + [SIGNAL_WEIGHTS[s] for s in n.signals])
            for n, rules in zip(normalized, matched, strict=True)
        ]
        default = RULES_ONLY_THRESHOLD
    return [
        Verdict(
            score=float(score),
            threshold=default if threshold is None else threshold,
            rules=[r.name for r in rules],
            signals=sorted(n.signals),
            excerpt=_excerpt(n, rules),
        )
        for n, rules, score in zip(normalized, matched, scores, strict=True)
    ]


def scan(text: str, *, threshold: float | None = None) -> Verdict:
    return scan_many([text], threshold=threshold)[0]
