"""Scan text for prompt injection: both stages (`guard.stages`), then the default policy's action."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import policy, stages

EXCERPT_CHARS = 160


@dataclass
class Verdict:
    score: float
    action: str  # what the shipped default policy does: block, sanitize, log or allow
    rules: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    excerpt: str = ""
    semantic: bool = False  # whether stage two read it

    @property
    def flagged(self) -> bool:
        return self.action != policy.ALLOW

    def as_json(self) -> dict:
        return {
            "flagged": self.flagged,
            "score": round(self.score, 4),
            "rules": self.rules + self.signals,
            "action": self.action,
        }


def _excerpt(view: stages.View) -> str:
    text = view.normalized.scan_text
    start = max(view.hits[0][1].start() - 40, 0) if view.hits else 0
    return text[start : start + EXCERPT_CHARS]


def scan_many(texts: list[str]) -> list[Verdict]:
    thresholds = policy.shipped()
    verdicts = []
    for scored in stages.score_all(texts, gate=policy.shipped_gate()):
        view = scored.view
        verdicts.append(
            Verdict(
                score=float(scored.score),
                action=thresholds.action(scored.score),
                rules=[rule.name for rule, _ in view.hits],
                signals=sorted(view.normalized.signals),
                excerpt=_excerpt(view),
                semantic=scored.gated,
            )
        )
    return verdicts


def scan(text: str) -> Verdict:
    return scan_many([text])[0]
