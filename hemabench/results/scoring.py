"""From stored predictions to every reported number: the one path used by runs and by validation.

Per variant, each headline metric gets ``values`` per fold (or repetition), their mean and
std, and a 95% interval *of that mean*: where per-sample predictions are stored, a
percentile bootstrap that redraws test units (patients where samples carry a ``group``,
else samples) within each fold and averages the refitted fold metrics
(:mod:`hemabench.results.bootstrap`); for confusion-only variants (repetitions), Student's t
interval of the mean over repetitions as ``ci95`` (``intervals.mean_interval``) and the 2.5-97.5 percentiles of
single repetitions as ``spread95``. Patient-level accuracy (mean over patients of the fraction of their samples
classified correctly) is added where samples carry a ``group``; one-vs-rest ROC-AUC and
PR-AUC (macro over classes present) and calibration (ECE, Brier, NLL, AURC; see
``calibration``) where they carry ``proba``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from hemabench.results.bootstrap import (
    Design,
    cell_count_replicates,
    fold_mean,
    headline_from_cells,
    headline_replicates,
    macro_auc_replicates,
    patient_accuracy_replicates,
    weighted_aucs,
)
from hemabench.results.calibration import Calibrated, calibration_metrics, calibration_replicates, resolve_slices
from hemabench.results.intervals import N_BOOTSTRAP, percentile_interval
from hemabench.results.metrics import aggregate, classification_metrics, encode, metric_names, over_repetitions
from hemabench.results.packing import proba_array  # a list, or a packed blob in large results

UPPER = {"nll": float("inf"), "nll_ts": float("inf"), "brier": 2.0, "brier_ts": 2.0}  # the others are proportions


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
    """Per-class one-vs-rest ROC-AUC and average precision (scikit-learn's ``roc_auc_score`` and
    ``average_precision_score``, computed as one replicate of the bootstrap's), for classes
    with positives and negatives."""
    true, proba = np.asarray(true), proba_array(proba)
    ones, out = np.ones((1, len(true))), {}
    for j, label in enumerate(labels):
        positive = true == label
        if 0 < positive.sum() < len(true):
            scores = weighted_aucs(proba[:, j], positive, ones)
            out[label] = {"roc_auc": float(scores["roc_auc"][0]), "pr_auc": float(scores["pr_auc"][0])}
    return out


def _macro_auc(true, proba, labels, key: str) -> float:
    scores = auc_scores(true, proba, labels)
    return float(np.mean([s[key] for s in scores.values()])) if scores else float("nan")


def sample_replicates(p: dict, labels: list[str], seed: int, n_boot: int,
                      calibrated: Calibrated | None = None) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each fold-mean metric: test units redrawn within each fold (see
    :mod:`.bootstrap`); image-level headline metrics through cell counts, the rest through
    per-sample weights."""
    true, pred = encode(np.asarray(p["true"], dtype=str), labels), encode(np.asarray(p["pred"], dtype=str), labels)
    group = np.asarray(p["group"], dtype=str) if "group" in p else None
    design = Design.build(p["fold"], group if group is not None else p.get("id"))
    k, chunks = len(labels), defaultdict(list)
    if "proba" in p and calibrated is None:
        calibrated = Calibrated.of(p, labels)
    proba = calibrated.arrays[""] if calibrated is not None else None
    by_cells = design.single_samples
    if by_cells:
        codes, counts = cell_count_replicates(design, true * k + pred, seed, n_boot)
        for c in counts:
            for name, values in headline_from_cells(c, codes, k, metric_names()).items():
                chunks[name].append(values)
    if by_cells and group is None and proba is None:
        return {name: np.concatenate(values) for name, values in chunks.items()}
    for counts in design.unit_counts(seed, n_boot):
        if not by_cells:
            for name, values in headline_replicates(design, true, pred, k, counts, metric_names()).items():
                chunks[name].append(values)
        if group is not None:
            chunks["patient_accuracy"].append(patient_accuracy_replicates(design, true == pred, group, counts))
        if proba is not None:
            weights = counts[:, design.unit]
            for key, values in macro_auc_replicates(design, true, proba, k, weights).items():
                chunks[f"{key}_macro"].append(values)
            for name, per_fold in calibration_replicates(calibrated, design.fold, len(design.folds), weights).items():
                chunks[name].append(fold_mean(per_fold))
    return {name: np.concatenate(values) for name, values in chunks.items()}


def _score_variant(p: dict, labels: list[str], seed: int, n_boot: int) -> tuple[dict, list[dict], list[str]]:
    folds = np.asarray(p["fold"], dtype=str)
    names = list(dict.fromkeys(folds))
    if "confusions" in p:  # repetitions: ci95 of their mean, spread95 of single runs
        fold_scores = [classification_metrics(*expand_confusion(c, labels), labels) for c in p["confusions"]]
        metrics = {name: over_repetitions([s[name] for s in fold_scores]) for name in metric_names()}
        return metrics, fold_scores, names
    true, pred = np.asarray(p["true"], dtype=str), np.asarray(p["pred"], dtype=str)
    fold_scores = [classification_metrics(true[folds == f], pred[folds == f], labels) for f in names]
    metrics = {name: aggregate([s[name] for s in fold_scores]) for name in metric_names()}
    if "group" in p:
        group = np.asarray(p["group"], dtype=str)
        metrics["patient_accuracy"] = aggregate(
            [patient_accuracy(true[folds == f], pred[folds == f], group[folds == f]) for f in names])
    calibrated = None
    if "proba" in p:
        calibrated = Calibrated.of(p, labels)  # probabilities decoded, temperatures fitted: once per variant
        proba = calibrated.arrays[""]
        for key in ("roc_auc", "pr_auc"):
            values = [_macro_auc(true[folds == f], proba[folds == f], labels, key) for f in names]
            metrics[f"{key}_macro"] = aggregate([v for v in values if np.isfinite(v)] or [float("nan")])
        metrics.update(calibration_metrics(calibrated))  # ECE, Brier, NLL, AURC (+ scaled): results/calibration.py
    for name, replicates in sample_replicates(p, labels, seed, n_boot, calibrated).items():
        metrics[name]["ci95"] = percentile_interval(replicates, metrics[name]["mean"], (0.0, UPPER.get(name, 1.0)))
    return metrics, fold_scores, names


def score_predictions(predictions: dict, labels: list[str], detail_variant: str, seed: int = 0,
                      n_boot: int = N_BOOTSTRAP) -> dict:
    """Every metric of every variant, plus per-class numbers and the confusion matrix of the
    detail variant (``Task.detail_variant``) pooled over folds (summed over repetitions for
    confusion-only variants)."""
    predictions = resolve_slices(predictions)  # a pooled variant's temperature slices, stored once elsewhere
    metrics: dict[str, dict] = {}
    main_scores, main_folds = [], []
    for variant, p in predictions.items():
        variant_metrics, fold_scores, names = _score_variant(p, labels, seed, n_boot)
        metrics.update({f"{variant}/{name}": value for name, value in variant_metrics.items()})
        if variant == detail_variant:
            main_scores, main_folds = fold_scores, names
    main = predictions[detail_variant]
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
