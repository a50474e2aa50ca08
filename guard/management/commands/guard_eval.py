import time

import numpy as np
from django.core.management.base import BaseCommand

from guard import policy
from guard.evaluation import (
    CALIBRATION_FPR,
    TARGET_FPR,
    featurize,
    k_fold,
    leave_one_family_out,
    load_jsonl,
    shipped_by_source,
)
from guard.scanner import scan_many


class Command(BaseCommand):
    help = (
        "Evaluate the guard on a labelled JSONL file ({text, label, source}): the shipped model's recall and "
        "false-positive rate per source, then leave-one-family-out and 5-fold figures (retrained per fold)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--shipped-only", action="store_true", help="Skip the retraining figures.")
        parser.add_argument("--no-generated", action="store_true", help="Folds train on the file alone.")
        parser.add_argument(
            "--two-stage",
            action="store_true",
            help="Leave-one-family-out of the whole guard (both stages; each fold's policy chosen on the "
            "validation set) instead of the fast layer's LOFO and 5-fold figures. Slow: embeds every row once.",
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        data = load_jsonl(options["path"])
        verdicts = scan_many(data.texts)
        flagged = np.array([v.flagged for v in verdicts])
        blocked = np.array([v.action == policy.BLOCK for v in verdicts])
        semantic = np.array([v.semantic for v in verdicts])
        attacks, benign = data.labels == 1, data.labels == 0
        thresholds = policy.shipped()
        self.stdout.write(
            f"Shipped guard on {len(data.labels)} rows (block {thresholds.block:.3f}, "
            f"sanitise {thresholds.sanitize:.3f}, log {thresholds.log:.3f}); flagged = any action but allow:"
        )
        if attacks.any():
            self.stdout.write(
                f"  recall {flagged[attacks].mean():.3f} flagged, {blocked[attacks].mean():.3f} blocked, "
                f"on {attacks.sum()} attacks"
            )
        if benign.any():
            self.stdout.write(
                f"  false positives {flagged[benign].mean():.4f} flagged, {blocked[benign].mean():.4f} blocked, "
                f"on {benign.sum()} benign; stage two read {semantic[benign].mean():.1%} of them"
            )
        by_source_blocked = shipped_by_source(data, blocked)
        for source, (rate, count) in shipped_by_source(data, flagged).items():
            label = "recall" if data.labels[data.sources.index(source)] == 1 else "FPR"
            self.stdout.write(
                f"    {source:60} {label:6} {rate:.3f}  blocked {by_source_blocked[source][0]:.3f}  (n={count})"
            )
        if options["shipped_only"]:
            return
        self.stdout.write(
            f"Generalisation (each fold trained from scratch; threshold at {CALIBRATION_FPR:.1%} FPR on its training "
            f"benign rows, out-of-fold, for a held-out target of {TARGET_FPR:.0%}):"
        )
        featurize(data)
        extra = None
        if not options["no_generated"] or options["two_stage"]:
            from guard.training.train import generated_set

            extra = generated_set()
        if options["two_stage"]:
            self._two_stage(data, extra)
            self.stdout.write(f"({time.monotonic() - started:.0f}s)")
            return
        report = leave_one_family_out(data, extra)
        for family, value in sorted(report.lofo_recall.items()):
            self.stdout.write(f"  LOFO recall  {family:45} {value:.3f}")
        for family, value in sorted(report.lofo_fpr.items()):
            self.stdout.write(f"  LOFO FPR     {family:45} {value:.3f}")
        self.stdout.write(
            f"  leave-one-family-out: macro recall {report.lofo_macro_recall:.3f}, "
            f"worst-family FPR {report.lofo_worst_fpr:.3f}, AUC {report.lofo_auc:.3f}"
        )
        if len(set(data.labels)) > 1:
            k_fold(data, extra, report)
            self.stdout.write(
                f"  5-fold: recall {report.kfold_recall:.3f}, FPR {report.kfold_fpr:.3f}, AUC {report.kfold_auc:.3f}"
            )
        self.stdout.write(f"({time.monotonic() - started:.0f}s)")

    def _two_stage(self, data, extra) -> None:
        from guard.evaluation import two_stage_leave_one_family_out
        from guard.semantic import EmbeddingCache
        from guard.training.train import EMBEDDING_CACHE
        from guard.validation import VALIDATION_PATH

        self.stdout.write(
            "Whole-guard leave-one-family-out: each fold trains every model without the family, chooses its "
            "policy on the validation set, then scans the family:"
        )
        report = two_stage_leave_one_family_out(
            data,
            extra,
            load_jsonl(VALIDATION_PATH),
            EmbeddingCache(EMBEDDING_CACHE),
            progress=lambda family: self.stderr.write(f"  fold done: {family}"),
        )
        for name in sorted(report.flagged):
            label = "recall" if name in report.attack_families else "FPR"
            self.stdout.write(
                f"  {name:60} {label:6} flagged {report.flagged[name]:.3f}  blocked {report.blocked[name]:.3f}"
            )
        attacks = [report.flagged[n] for n in report.attack_families]
        benign = [report.flagged[n] for n in report.flagged if n not in report.attack_families]
        self.stdout.write(
            f"  macro recall {np.mean(attacks):.3f} flagged; worst benign family {max(benign):.3f} flagged, "
            f"{max(report.blocked[n] for n in report.flagged if n not in report.attack_families):.3f} blocked"
        )
