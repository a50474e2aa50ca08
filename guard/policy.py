"""What the guard does with a score: a policy that fails safe.

A score at or over the block threshold is refused (400); in the band below it, down to the
sanitise threshold, the text is fenced as untrusted data and forwarded; in the band below that,
down to the log threshold, it is forwarded and recorded; under it, nothing happens. The shipped
thresholds (`guard/model/thresholds.json`) were chosen on the validation set (`guard/validation/`),
never on the development set the models were fitted to: block where at most 0.2% of its benign
prompts score, sanitise at 1%, and the log threshold where sanitising starts (so `flagged`, any
action but allow, is the 1% too; a plan that raises its sanitise threshold logs the band
between). A plan, and a tenant over it, may set its own block and sanitise thresholds, and per
message role (`{"tool": {"block": 0.9, "sanitize": 0.3}}`, or a bare number for
the sanitise threshold alone). The guard mode caps the action: `block` allows every tier,
`sanitize` never blocks, `log` only records, `off` does not scan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from .models import GuardMode

THRESHOLDS_PATH = Path(__file__).resolve().parent / "model" / "thresholds.json"

BLOCK, SANITIZE, LOG, ALLOW = "block", "sanitize", "log", "allow"
_RANK = {ALLOW: 0, LOG: 1, SANITIZE: 2, BLOCK: 3}
_MODE_CAP = {GuardMode.OFF: ALLOW, GuardMode.LOG: LOG, GuardMode.SANITIZE: SANITIZE, GuardMode.BLOCK: BLOCK}


@dataclass(frozen=True)
class Thresholds:
    block: float
    sanitize: float
    log: float

    def action(self, score: float, mode: str = GuardMode.BLOCK) -> str:
        """The tier the score reaches, capped by the mode."""
        if score >= self.block:
            tier = BLOCK
        elif score >= self.sanitize:
            tier = SANITIZE
        elif score >= self.log:
            tier = LOG
        else:
            tier = ALLOW
        cap = _MODE_CAP.get(mode, BLOCK)
        return tier if _RANK[tier] <= _RANK[cap] else cap

    def overridden(self, block: float | None = None, sanitize: float | None = None) -> Thresholds:
        """These thresholds with a plan's or tenant's own; the log threshold never rises above sanitise."""
        block = self.block if block is None else float(block)
        sanitize = self.sanitize if sanitize is None else float(sanitize)
        return replace(self, block=block, sanitize=sanitize, log=min(self.log, sanitize))


@lru_cache(maxsize=1)
def shipped_policy() -> dict:
    return json.loads(THRESHOLDS_PATH.read_text())


@lru_cache(maxsize=1)
def shipped() -> Thresholds:
    data = shipped_policy()
    return Thresholds(block=float(data["block"]), sanitize=float(data["sanitize"]), log=float(data["log"]))


def shipped_gate():
    """Where stage two runs (`guard.stages.Gate`), as chosen with the thresholds."""
    from .stages import Gate

    gate = shipped_policy().get("gate") or {}
    return Gate(
        fast=float(gate.get("fast", 0.0)),
        coverage=float(gate.get("coverage", 1.0)),
        contrast=float(gate.get("contrast", 0.0)),
    )


def parse_role_thresholds(value) -> dict[str, tuple[float | None, float | None]]:
    """`{"tool": 0.3}` or `{"tool": {"block": 0.9, "sanitize": 0.3}}` → role: (block, sanitize).
    Raises ValueError on anything else."""
    if not isinstance(value, dict):
        raise ValueError("must be an object of role: threshold")
    parsed = {}
    for role, entry in value.items():
        if isinstance(entry, bool):
            raise ValueError(f"{role}: a threshold is a number")
        if isinstance(entry, int | float):
            parsed[role] = (None, _score(role, entry))
        elif isinstance(entry, dict) and entry and set(entry) <= {"block", "sanitize"}:
            parsed[role] = (
                _score(role, entry["block"]) if "block" in entry else None,
                _score(role, entry["sanitize"]) if "sanitize" in entry else None,
            )
        else:
            raise ValueError(f'{role}: a number, or {{"block": x, "sanitize": y}}')
    return parsed


def _score(role: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{role}: a threshold is a number")
    # above 1 is allowed: it turns a tier off
    if value < 0:
        raise ValueError(f"{role}: a threshold is not negative")
    return float(value)


@lru_cache(maxsize=1)
def shipped_role_sanitize() -> dict[str, float]:
    """The sanitise threshold for data carriers (tool results, documents, carriers pasted into a
    user turn): lower than a user's own words, since an instruction there is evidence, and
    fencing data costs the request nothing."""
    return {role: float(value) for role, value in (shipped_policy().get("roles") or {}).items()}


def default_thresholds_for_role(role: str) -> Thresholds:
    """What the shipped defaults do for a message role (no plan or tenant overrides)."""
    base = shipped()
    carrier = shipped_role_sanitize().get(role)
    return base.overridden(sanitize=carrier) if carrier is not None and carrier < base.sanitize else base


def thresholds_for(principal, role: str) -> Thresholds:
    """The thresholds for one message role: the plan's own for that role, else the principal's
    (plan, then tenant) with the shipped carrier default where it is lower."""
    base = shipped().overridden(principal.guard_block_threshold, principal.guard_sanitize_threshold)
    for name, (block, sanitize) in principal.guard_role_thresholds:
        if name == role:
            return base.overridden(block, sanitize)
    carrier = shipped_role_sanitize().get(role)
    if carrier is not None and carrier < base.sanitize:
        return base.overridden(sanitize=carrier)
    return base
