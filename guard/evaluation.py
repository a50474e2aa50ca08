"""Measure generalisation, not memory: leave-one-family-out and 5-fold figures for a labelled
JSONL file (`{"text", "label", "source"}`), each fold trained from scratch on the rest."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from . import classifier
from .stages import views

TARGET_FPR = 0.01
# Thresholds are set at this rate on the training benign rows (scored out-of-fold): measured on
# dev, held-out benign rows ran 0.1-0.3 points above the rate a threshold was calibrated at, so
# calibrating at TARGET_FPR itself let held-out false positives exceed it.
CALIBRATION_FPR = 0.008


@dataclass
class Labelled:
    texts: list[str]
    labels: np.ndarray
    sources: list[str]
    x: object = None

    @property
    def families(self) -> list[str]:
        return [s.split(":")[0] for s in self.sources]


def load_jsonl(path: str | Path) -> Labelled:
    texts, labels, sources = [], [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(int(row["label"]))
                sources.append(row.get("source", "unknown"))
    return Labelled(texts, np.array(labels), sources)


# One vocabulary for every matrix of this process, so rows from different files line up.
VOCABULARY = classifier.Vocabulary()


def featurize(data: Labelled) -> Labelled:
    seen = views(data.texts)
    data.x = classifier.features([v.grams for v in seen], [v.fired for v in seen], VOCABULARY)
    return data


def fit(x, labels, extra: Labelled | None = None, *, c: float | None = None):
    """Train on the labelled rows plus `extra` (generated examples); set the threshold at
    CALIBRATION_FPR of the labelled benign rows only, scored out-of-fold. The generated benign rows are
    easy, so counting them would put the threshold where more real false positives get through;
    and a model's scores on rows it was fitted to are too confident to calibrate on."""
    from scipy import sparse

    calibrate = np.ones(len(labels), dtype=bool)
    x = classifier.widen(x, VOCABULARY.width)
    if extra is not None and extra.x is not None:
        x = sparse.vstack([x, classifier.widen(extra.x, VOCABULARY.width)], format="csr")
        calibrate = np.concatenate([calibrate, np.zeros(len(extra.labels), dtype=bool)])
        labels = np.concatenate([labels, extra.labels])
    c = classifier.DEFAULT_C if c is None else c
    out_of_fold = np.zeros(len(labels))
    for train_idx, test_idx in StratifiedKFold(3, shuffle=True, random_state=3).split(x, labels):
        out_of_fold[test_idx] = classifier.train(x[train_idx], labels[train_idx], VOCABULARY, c=c).scores(x[test_idx])
    model = classifier.train(x, labels, VOCABULARY, c=c)
    model.threshold = classifier.threshold_at_fpr(out_of_fold[(labels == 0) & calibrate], CALIBRATION_FPR)
    return model


def out_of_fold_fast(data: Labelled, extra: Labelled, k: int = 3) -> np.ndarray:
    """Stage one's logit for every row of `data` then `extra`, each from a model that did not see
    it: what the second stage is trained on, so it learns how far a fresh fast score is worth."""
    from scipy import sparse

    from .stages import logit

    x = sparse.vstack(
        [classifier.widen(data.x, VOCABULARY.width), classifier.widen(extra.x, VOCABULARY.width)], format="csr"
    )
    labels = np.concatenate([data.labels, extra.labels])
    scores = np.zeros(len(labels))
    for train_idx, test_idx in StratifiedKFold(k, shuffle=True, random_state=11).split(x, labels):
        scores[test_idx] = classifier.train(x[train_idx], labels[train_idx], VOCABULARY).scores(x[test_idx])
    return np.array([logit(s) for s in scores])


@dataclass
class Report:
    lofo_recall: dict[str, float] = field(default_factory=dict)
    lofo_fpr: dict[str, float] = field(default_factory=dict)
    lofo_auc: float = 0.0
    kfold_recall: float = 0.0
    kfold_fpr: float = 0.0
    kfold_auc: float = 0.0

    @property
    def lofo_macro_recall(self) -> float:
        return float(np.mean(list(self.lofo_recall.values()))) if self.lofo_recall else 0.0

    @property
    def lofo_worst_fpr(self) -> float:
        return max(self.lofo_fpr.values()) if self.lofo_fpr else 0.0


def leave_one_family_out(data: Labelled, extra: Labelled | None = None, report: Report | None = None) -> Report:
    report = report or Report()
    families = np.array(data.families)
    pooled = np.zeros(len(data.labels))
    for family in sorted(set(families)):
        held = families == family
        model = fit(data.x[~held], data.labels[~held], extra)
        scores = model.scores(data.x[held])
        pooled[held] = scores
        labels = data.labels[held]
        if (labels == 1).any():
            report.lofo_recall[family] = float((scores[labels == 1] >= model.threshold).mean())
        if (labels == 0).any():
            report.lofo_fpr[family] = float((scores[labels == 0] >= model.threshold).mean())
    report.lofo_auc = float(roc_auc_score(data.labels, pooled))
    return report


def k_fold(data: Labelled, extra: Labelled | None = None, report: Report | None = None, k: int = 5) -> Report:
    report = report or Report()
    pooled = np.zeros(len(data.labels))
    flagged = np.zeros(len(data.labels), dtype=bool)
    for train_idx, test_idx in StratifiedKFold(k, shuffle=True, random_state=7).split(data.x, data.labels):
        model = fit(data.x[train_idx], data.labels[train_idx], extra)
        scores = model.scores(data.x[test_idx])
        pooled[test_idx] = scores
        flagged[test_idx] = scores >= model.threshold
    report.kfold_recall = float(flagged[data.labels == 1].mean())
    report.kfold_fpr = float(flagged[data.labels == 0].mean())
    report.kfold_auc = float(roc_auc_score(data.labels, pooled))
    return report


def shipped_by_source(data: Labelled, flagged: np.ndarray) -> dict[str, tuple[float, int]]:
    """Per source: recall (attacks) or false-positive rate (benign) of the shipped guard."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for source, hit in zip(data.sources, flagged, strict=True):
        groups[source].append(bool(hit))
    return {source: (float(np.mean(hits)), len(hits)) for source, hits in sorted(groups.items())}


def subset(data: Labelled, mask: np.ndarray) -> Labelled:
    index = np.flatnonzero(mask)
    return Labelled([data.texts[i] for i in index], data.labels[index], [data.sources[i] for i in index], data.x[index])


def fit_two_stage(data: Labelled, extra: Labelled, cache):
    """Every model of the guard, trained on `data` plus `extra` (featurised): the fast layer, the
    character model and the second stage (`guard.training.train` ships what this returns)."""
    from . import perplexity, semantic, stages

    fast = fit(data.x, data.labels, extra)
    texts = data.texts + extra.texts
    labels = np.concatenate([data.labels, extra.labels])
    seen = stages.views(texts)
    charlm = perplexity.fit([v.normalized.scan_text for v, label in zip(seen, labels, strict=True) if label == 0])
    vectors = cache.embed([v.window for v in seen])
    contrasts = [charlm.span_contrast(v.normalized.scan_text) for v in seen]
    inputs = stages.second_stage_inputs(vectors, out_of_fold_fast(data, extra), contrasts)
    return stages.Models(fast, charlm, semantic.train(inputs, labels))


@dataclass
class TwoStageReport:
    """Per held-out development family: recall (or false positives) at the sanitise and the block
    thresholds, each fold's models trained without the family and its policy chosen on validation."""

    flagged: dict[str, float] = field(default_factory=dict)
    blocked: dict[str, float] = field(default_factory=dict)
    attack_families: set[str] = field(default_factory=set)


def two_stage_leave_one_family_out(data: Labelled, extra: Labelled, validation: Labelled, cache, progress=None):
    from . import policy, stages

    report = TwoStageReport()
    families = np.array(data.families)
    for family in sorted(set(families)):
        held = families == family
        models = fit_two_stage(subset(data, ~held), extra, cache)
        scored = stages.score_all(validation.texts, cache=cache, force_second_stage=True, models=models)
        benign_traffic = [t for t, label in zip(data.texts, data.labels, strict=True) if label == 0]
        traffic = stages.score_all(benign_traffic, models=models)
        chosen = stages.choose_policy(scored, validation.labels, validation.families, traffic)
        gate = stages.Gate(**chosen["gate"])
        thresholds = policy.Thresholds(chosen["block"], chosen["sanitize"], chosen["log"])
        held_scores = np.array(
            [
                s.score
                for s in stages.score_all(
                    [data.texts[i] for i in np.flatnonzero(held)], gate=gate, cache=cache, models=models
                )
            ]
        )
        for label in (0, 1):
            mine = data.labels[held] == label
            if mine.any():
                name = f"{family} ({'attacks' if label else 'benign'})"
                report.flagged[name] = float((held_scores[mine] >= thresholds.log).mean())
                report.blocked[name] = float((held_scores[mine] >= thresholds.block).mean())
                if label:
                    report.attack_families.add(name)
        if progress:
            progress(family)
    return report
