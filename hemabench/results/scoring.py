"""From stored predictions to every reported number: the one path used by runs and by validation.

Per variant, each headline metric gets ``values`` per fold (or repetition), their mean and
std, and a 95% interval: a percentile bootstrap over test samples where per-sample
predictions are stored, else the 2.5-97.5 percentiles over repetitions (confusion-only
variants). Patient-level accuracy (mean over patients of the fraction of their samples
classified correctly) is added where samples carry a ``group``; one-vs-rest ROC-AUC and
PR-AUC (macro over classes present) and calibration (ECE, Brier, NLL, AURC; see
``calibration``) where they carry ``proba``.
"""

from __future__ import annotations

import numpy as np

from hemabench.metrics import aggregate, bootstrap_ci, classification_metrics
from hemabench.results.calibration import calibration_metrics
from hemabench.results.fast_auc import average_precision, roc_auc  # scikit-learn's numbers, fast
from hemabench.results.packing import proba_array  # a list, or a packed blob in large results

HEADLINE = ("accuracy", "balanced_accuracy", "weighted_f1", "macro_f1")
N_BOOTSTRAP = 1000
N_BOOTSTRAP_AUC = 200


def expand_confusion(counts, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-samples (true, pred) with exactly this confusion matrix (rows = true)."""
    counts = np.asarray(counts, dtype=int)
    rows, cols = np.indices(counts.shape)
    lab = np.asarray(labels)
    return np.repeat(lab[rows.ravel()], counts.ravel()), np.repeat(lab[cols.ravel()], counts.ravel())


def patient_accuracy(true, pred, group) -> float:
    correct = (np.asarray(true) == np.asarray(pred)).astype(float)
    _, inverse = np.unique(np.asarray(group), return_inverse=True)
    return float(np.mean(np.bincount(inverse, correct) / np.bincount(inverse)))


def auc_scores(true, proba, labels: list[str]) -> dict[str, dict[str, float]]:
    """Per-class one-vs-rest ROC-AUC and average precision, for classes with positives and negatives."""
    true, proba = np.asarray(true), proba_array(proba)
    out = {}
    for j, label in enumerate(labels):
        positive = true == label
        if 0 < positive.sum() < len(true):
            out[label] = {"roc_auc": roc_auc(positive, proba[:, j]), "pr_auc": average_precision(positive, proba[:, j])}
    return out


def _macro_auc(true, proba, labels, key: str) -> float:
    scores = auc_scores(true, proba, labels)
    return float(np.mean([s[key] for s in scores.values()])) if scores else float("nan")


def _bootstrap(fn, n: int, seed: int, n_boot: int, units=None) -> list[float]:
    """Percentile interval of ``fn(rows)`` over resamples of rows (or of whole units, e.g. patients)."""
    rng = np.random.default_rng(seed)
    if units is not None:
        names, inverse = np.unique(np.asarray(units), return_inverse=True)
        members = [np.flatnonzero(inverse == u) for u in range(len(names))]
    values = []
    for _ in range(n_boot):
        if units is None:
            rows = rng.integers(0, n, n)
        else:
            rows = np.concatenate([members[u] for u in rng.integers(0, len(members), len(members))])
        value = fn(rows)
        if np.isfinite(value):
            values.append(value)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else [float("nan")] * 2


def _score_variant(p: dict, labels: list[str], seed: int, n_boot: int) -> tuple[dict, list[dict], list[str]]:
    folds = np.asarray(p["fold"], dtype=str)
    names = list(dict.fromkeys(folds))
    if "confusions" in p:
        fold_scores = [classification_metrics(*expand_confusion(c, labels), labels) for c in p["confusions"]]
        metrics = {}
        for name in HEADLINE:
            values = [s[name] for s in fold_scores]
            metrics[name] = {**aggregate(values), "ci95": [float(np.percentile(values, 2.5)),
                                                           float(np.percentile(values, 97.5))]}
        return metrics, fold_scores, names
    true, pred = np.asarray(p["true"], dtype=str), np.asarray(p["pred"], dtype=str)
    fold_scores = [classification_metrics(true[folds == f], pred[folds == f], labels) for f in names]
    metrics = {name: {**aggregate([s[name] for s in fold_scores]),
                      "ci95": bootstrap_ci(true, pred, name, labels, n_boot=n_boot, seed=seed)} for name in HEADLINE}
    if "group" in p:
        group = np.asarray(p["group"], dtype=str)
        values = [patient_accuracy(true[folds == f], pred[folds == f], group[folds == f]) for f in names]
        metrics["patient_accuracy"] = {**aggregate(values), "ci95": _bootstrap(
            lambda r: patient_accuracy(true[r], pred[r], group[r]), len(true), seed, n_boot, units=group)}
    if "proba" in p:
        proba = proba_array(p["proba"])
        for key in ("roc_auc", "pr_auc"):
            values = [_macro_auc(true[folds == f], proba[folds == f], labels, key) for f in names]
            metrics[f"{key}_macro"] = {**aggregate([v for v in values if np.isfinite(v)] or [float("nan")]),
                                       "ci95": _bootstrap(lambda r, k=key: _macro_auc(true[r], proba[r], labels, k),
                                                          len(true), seed, N_BOOTSTRAP_AUC)}
        calibration = calibration_metrics(p, labels, lambda fn, n: _bootstrap(fn, n, seed, N_BOOTSTRAP_AUC))
        metrics.update(calibration)  # ECE, Brier, NLL, AURC (+ temperature-scaled): results/calibration.py
    return metrics, fold_scores, names


def score_predictions(predictions: dict, labels: list[str], main_variant: str, seed: int = 0,
                      n_boot: int = N_BOOTSTRAP) -> dict:
    """Every metric of every variant, plus per-class numbers and the confusion matrix of the
    main variant pooled over folds (summed over repetitions for confusion-only variants)."""
    metrics: dict[str, dict] = {}
    main_scores, main_folds = [], []
    for variant, p in predictions.items():
        variant_metrics, fold_scores, names = _score_variant(p, labels, seed, n_boot)
        metrics.update({f"{variant}/{name}": value for name, value in variant_metrics.items()})
        if variant == main_variant:
            main_scores, main_folds = fold_scores, names
    main = predictions[main_variant]
    if "confusions" in main:
        pooled = classification_metrics(*expand_confusion(np.sum(main["confusions"], axis=0), labels), labels)
    else:
        pooled = classification_metrics(np.asarray(main["true"], dtype=str), np.asarray(main["pred"], dtype=str), labels)
    per_class = pooled["per_class"]
    aucs = auc_scores(main["true"], main["proba"], labels) if "proba" in main else {}
    for label, row in per_class.items():
        fold_sens = [s["per_class"][label]["sensitivity"] for s in main_scores if s["per_class"][label]["support"]]
        row["sensitivity_folds"] = aggregate(fold_sens) if fold_sens else None
        row.update(aucs.get(label, {}))
    return {"metrics": metrics, "per_class": per_class, "confusion_matrix": pooled["confusion_matrix"],
            "folds": main_folds}
