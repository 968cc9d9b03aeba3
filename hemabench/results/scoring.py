"""From stored predictions to every reported number: the one path used by runs and by validation."""

from __future__ import annotations

import numpy as np

from hemabench.metrics import aggregate, bootstrap_ci, classification_metrics

HEADLINE = ("accuracy", "balanced_accuracy", "weighted_f1", "macro_f1")
N_BOOTSTRAP = 1000


def score_predictions(predictions: dict, labels: list[str], main_variant: str, seed: int = 0,
                      n_boot: int = N_BOOTSTRAP) -> dict:
    """Metrics (mean/std/values over folds, bootstrap ci95 over test samples) for every variant,
    plus per-class numbers and the confusion matrix of the main variant, pooled over folds."""
    true = np.asarray(predictions["true"], dtype=str)
    folds = np.asarray(predictions["fold"], dtype=str)
    fold_names = list(dict.fromkeys(folds))
    metrics: dict[str, dict] = {}
    per_fold_main = []
    for variant, pred in predictions["pred"].items():
        pred = np.asarray(pred, dtype=str)
        fold_scores = [classification_metrics(true[folds == f], pred[folds == f], labels) for f in fold_names]
        if variant == main_variant:
            per_fold_main = fold_scores
        for name in HEADLINE:
            metrics[f"{variant}/{name}"] = {
                **aggregate([s[name] for s in fold_scores]),
                "ci95": bootstrap_ci(true, pred, name, labels, n_boot=n_boot, seed=seed),
            }
    pooled = classification_metrics(true, np.asarray(predictions["pred"][main_variant], dtype=str), labels)
    per_class = pooled["per_class"]
    for label, row in per_class.items():
        fold_sens = [s["per_class"][label]["sensitivity"] for s in per_fold_main if s["per_class"][label]["support"]]
        row["sensitivity_folds"] = aggregate(fold_sens) if fold_sens else None
    return {"metrics": metrics, "per_class": per_class, "confusion_matrix": pooled["confusion_matrix"],
            "folds": fold_names}
