import time

import numpy as np
from django.core.management.base import BaseCommand

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

    def handle(self, *args, **options):
        started = time.monotonic()
        data = load_jsonl(options["path"])
        verdicts = scan_many(data.texts)
        flagged = np.array([v.flagged for v in verdicts])
        attacks, benign = data.labels == 1, data.labels == 0
        self.stdout.write(f"Shipped guard on {len(data.labels)} rows (threshold {verdicts[0].threshold:.3f}):")
        if attacks.any():
            self.stdout.write(f"  recall {flagged[attacks].mean():.3f} on {attacks.sum()} attacks")
        if benign.any():
            self.stdout.write(f"  false-positive rate {flagged[benign].mean():.3f} on {benign.sum()} benign")
        for source, (rate, count) in shipped_by_source(data, flagged).items():
            label = "recall" if data.labels[data.sources.index(source)] == 1 else "FPR"
            self.stdout.write(f"    {source:60} {label:6} {rate:.3f}  (n={count})")
        if options["shipped_only"]:
            return
        self.stdout.write(
            f"Generalisation (each fold trained from scratch; threshold at {CALIBRATION_FPR:.1%} FPR on its training "
            f"benign rows, out-of-fold, for a held-out target of {TARGET_FPR:.0%}):"
        )
        featurize(data)
        extra = None
        if not options["no_generated"]:
            from guard.training.train import generated_set

            extra = generated_set()
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
