"""Calibration and selective prediction, from stored class probabilities.

Accuracy says how often an encoder's probe is right; these say whether its confidence can
be trusted (docs/metrics.md has the definitions and why a lab cares):

* ``ece``: expected calibration error, 15 equal-width bins on the top-class confidence;
* ``ece_debiased``: the debiased root-mean-square calibration error on the same bins (Kumar,
  Liang & Ma 2019): each bin's squared gap minus the sampling variance of its accuracy, so
  that a calibrated model on a small test set no longer scores a sizeable error from binning
  noise alone (the 15-bin ECE of 100-200 cells is mostly that noise);
* ``classwise_ece``: the same per class on that class's probability, averaged over classes;
* ``brier``: mean over cells of sum_k (p_k - y_k)^2 (0 best, 2 worst);
* ``nll``: mean -log p(true class), probabilities floored at ``PROBA_FLOOR``;
* ``aurc``: area under the risk-coverage curve (error rate among the most confident cells,
  averaged over every coverage 1/n..n/n), and ``risk_at_80``: the error rate of the 80%
  most confident cells;
* the same four calibration numbers after temperature scaling (suffix ``_ts``): one
  temperature per fold, fitted by minimising the NLL on a held-out slice of that fold's
  TRAINING part (stored beside the predictions under ``calibration``), never on test cells.

Everything is a function of the stored predictions, so ``validate`` recomputes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from hemabench.results.metrics import aggregate, encode
from hemabench.results.packing import PROBA_DECIMALS, pack_proba, proba_array

N_BINS = 15
PROBA_FLOOR = 0.5 * 10.0**-PROBA_DECIMALS  # half the list form's storage step: a stored 0 means "below 5e-7"
COVERAGE = 0.8  # risk_at_80
SLICE_FRACTION = 0.2  # share of each class's training cells held out to fit the temperature
T_BOUNDS = (0.05, 20.0)
CALIBRATION_METRICS = ("ece", "ece_debiased", "classwise_ece", "brier", "nll")


def _binned_gap(confidence: np.ndarray, hit: np.ndarray, n_bins: int = N_BINS) -> float:
    """sum over bins of (share of samples) * |mean hit - mean confidence|; bins (0,1/B], ..., ((B-1)/B, 1]."""
    if len(confidence) == 0:
        return float("nan")
    bins = _bins(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, hit, n_bins) - np.bincount(bins, confidence, n_bins))
    return float(gap.sum() / count.sum())


def ece(true_idx: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error on the top-class confidence (ties: the first class wins, as argmax)."""
    top = np.argmax(proba, axis=1)
    return _binned_gap(proba[np.arange(len(top)), top], (top == true_idx).astype(float), n_bins)


def _debiased_from_sums(count: np.ndarray, hits: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """sqrt(max(0, sum_b n_b/n [(a_b - c_b)^2 - a_b (1 - a_b) / (n_b - 1)])) from per-bin sums (..., bins);
    a bin with fewer than two cells adds nothing (its accuracy has no variance estimate)."""
    n = count.sum(axis=-1)
    safe = np.maximum(count, 1)
    acc, conf = hits / safe, confidence / safe
    term = np.where(count >= 2, count * ((acc - conf) ** 2 - acc * (1 - acc) / np.maximum(count - 1, 1)), 0.0)
    squared = np.divide(term.sum(axis=-1), n, out=np.full(np.shape(n), np.nan), where=n > 0)
    return np.sqrt(np.maximum(squared, 0.0))


def _bins(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    return np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)


def ece_debiased(true_idx: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Debiased RMS calibration error on the top-class confidence, the ECE's bins (module docstring)."""
    if len(true_idx) == 0:
        return float("nan")
    top = np.argmax(proba, axis=1)
    confidence, hit = proba[np.arange(len(top)), top], (top == true_idx).astype(float)
    bins = _bins(confidence, n_bins)
    return float(_debiased_from_sums(np.bincount(bins, minlength=n_bins).astype(float),
                                     np.bincount(bins, hit, n_bins), np.bincount(bins, confidence, n_bins)))


def classwise_ece(true_idx: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Mean over classes of the binned gap between p_k and the indicator y == k (Kull et al. 2019)."""
    if len(true_idx) == 0:
        return float("nan")
    return float(np.mean([_binned_gap(proba[:, k], (true_idx == k).astype(float), n_bins)
                          for k in range(proba.shape[1])]))


def brier(true_idx: np.ndarray, proba: np.ndarray) -> float:
    onehot = np.eye(proba.shape[1])[true_idx]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1))) if len(true_idx) else float("nan")


def nll(true_idx: np.ndarray, proba: np.ndarray) -> float:
    if len(true_idx) == 0:
        return float("nan")
    return float(-np.mean(np.log(np.maximum(proba[np.arange(len(true_idx)), true_idx], PROBA_FLOOR))))


def risk_coverage(true_idx: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk): error rate among the k most confident cells, k = 1..n (stable order on ties)."""
    order = np.argsort(-np.max(proba, axis=1), kind="stable")
    errors = (np.argmax(proba, axis=1) != true_idx)[order].astype(float)
    k = np.arange(1, len(order) + 1)
    return k / len(order), np.cumsum(errors) / k


def aurc(true_idx: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(risk_coverage(true_idx, proba)[1])) if len(true_idx) else float("nan")


def risk_at(true_idx: np.ndarray, proba: np.ndarray, coverage: float = COVERAGE) -> float:
    if len(true_idx) == 0:
        return float("nan")
    cov, risk = risk_coverage(true_idx, proba)
    return float(risk[max(int(np.ceil(coverage * len(cov))) - 1, 0)])


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): recomputable from stored probabilities alone."""
    z = np.log(np.maximum(proba, PROBA_FLOOR)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(true_idx: np.ndarray, proba: np.ndarray) -> float:
    """The T in ``T_BOUNDS`` minimising the NLL of softmax(log p / T) (bounded 1-d search on log T)."""
    if len(true_idx) == 0:
        return 1.0
    found = minimize_scalar(lambda log_t: nll(true_idx, apply_temperature(proba, float(np.exp(log_t)))),
                            bounds=tuple(np.log(T_BOUNDS)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


def held_out_slice(train: np.ndarray, labels: np.ndarray, seed: int, fraction: float = SLICE_FRACTION) -> np.ndarray:
    """A seeded stratified share of training rows (at least one per class with two or more cells),
    returned sorted. Only ``train`` rows are ever drawn: test cells cannot enter it."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in sorted(set(labels[train])):
        rows = np.sort(train[labels[train] == c])
        if len(rows) >= 2:
            picked.append(rng.permutation(rows)[:max(1, int(round(fraction * len(rows))))])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


def align_proba(proba: np.ndarray, classes, labels: list[str]) -> np.ndarray:
    """Probability columns of a model fitted on ``classes`` (sorted), reordered to ``labels``
    (0 for a label the model never saw; classes named alike, e.g. merged by a class mapping, add up)."""
    out = np.zeros((len(proba), len(labels)))
    lookup = {label: j for j, label in enumerate(labels)}
    for i, c in enumerate(classes):
        out[:, lookup[str(c)]] += proba[:, i]
    return out


def slice_payload(ids, folds, true, proba, **described) -> dict:
    """The ``calibration`` entry of a variant: the held-out slice's stored predictions, with
    how it was drawn (``fraction`` and ``seed``, or the task's own words, e.g. ``slice``)."""
    return {**described, "id": [str(i) for i in ids], "fold": [str(f) for f in folds],
            "true": [str(t) for t in true], "proba": pack_proba(proba)}


def pooled_slice(variants: list[str]) -> dict:
    """A ``calibration`` entry that is the concatenation of other variants' slices: a variant
    pooling several fits (BreakHis ``all``, ``offdiag``) stores its slices once, not twice."""
    return {"from": list(variants)}


def resolve_slices(predictions: dict) -> dict:
    """``predictions`` with every ``{"from": [...]}`` calibration entry replaced by the slices it
    names (which must be stored in full: one level, no cycle); ValueError names a bad reference."""
    out = dict(predictions)
    for variant, p in predictions.items():
        cal = p.get("calibration") if isinstance(p, dict) else None
        if not (isinstance(cal, dict) and "from" in cal):
            continue
        names = cal["from"]
        if not isinstance(names, list) or not names:
            raise ValueError(f"variant {variant!r}: calibration 'from' must be a non-empty list of variants")
        parts = []
        for name in names:
            source = predictions.get(name) if isinstance(name, str) else None
            slice_ = source.get("calibration") if isinstance(source, dict) else None
            if not isinstance(slice_, dict) or "from" in slice_ or "proba" not in slice_:
                raise ValueError(f"variant {variant!r}: calibration 'from' names {name!r}, which has no stored slice")
            parts.append(slice_)
        merged = {k: [x for part in parts for x in part[k]] for k in ("id", "fold", "true")}
        merged["proba"] = np.concatenate([proba_array(part["proba"]) for part in parts])
        out[variant] = {**p, "calibration": {**{k: v for k, v in parts[0].items() if k not in merged}, **merged}}
    return out


def _temperatures(p: dict, labels: list[str], folds: np.ndarray) -> dict[str, float]:
    """Per test fold, the temperature fitted on that fold's stored training slice."""
    cal = p.get("calibration")
    if not isinstance(cal, dict):
        return {}
    cal_folds = np.asarray(cal["fold"], dtype=str)
    cal_true, cal_proba = encode(np.asarray(cal["true"], dtype=str), labels), proba_array(cal["proba"])
    return {f: fit_temperature(cal_true[cal_folds == f], cal_proba[cal_folds == f])
            for f in dict.fromkeys(folds.tolist()) if np.any(cal_folds == f)}


def _scaled_arrays(p: dict, labels: list[str], folds: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray]:
    """The stored probabilities ("") and, where every fold has a training slice, the temperature-scaled ones."""
    arrays = {"": proba}
    temperatures = _temperatures(p, labels, folds)
    if temperatures and set(temperatures) == set(dict.fromkeys(folds.tolist())):
        scaled = proba.copy()
        for f, t in temperatures.items():
            scaled[folds == f] = apply_temperature(proba[folds == f], t)
        arrays["_ts"] = scaled
    return arrays


FNS = {"ece": ece, "ece_debiased": ece_debiased, "classwise_ece": classwise_ece, "brier": brier, "nll": nll, "aurc": aurc, "risk_at_80": risk_at}


@dataclass(frozen=True)
class Calibrated:
    """One variant's decoded arrays, made once per scoring: folds, true class indices, and the
    stored probabilities ("") with, where every fold has a training slice, the scaled ones ("_ts")."""

    folds: np.ndarray
    true_idx: np.ndarray
    arrays: dict[str, np.ndarray]

    @classmethod
    def of(cls, p: dict, labels: list[str], proba: np.ndarray | None = None) -> Calibrated:
        folds = np.asarray(p["fold"], dtype=str)
        proba = proba_array(p["proba"]) if proba is None else proba
        return cls(folds, encode(np.asarray(p["true"], dtype=str), labels), _scaled_arrays(p, labels, folds, proba))

    @property
    def names(self) -> list[tuple[str, str]]:
        """(metric, suffix) pairs: every metric raw, the calibration ones temperature-scaled."""
        return [(name, suffix) for suffix in self.arrays for name in FNS if not suffix or name in CALIBRATION_METRICS]


def calibration_metrics(c: Calibrated) -> dict[str, dict]:
    """Calibration and selective-prediction metrics of one variant with ``proba``: per fold, and
    their mean and std (intervals: :func:`calibration_replicates`, the scorer's fold-mean
    bootstrap). Temperature-scaled numbers appear only where every fold has a stored training slice."""
    names = list(dict.fromkeys(c.folds.tolist()))
    return {name + suffix: aggregate([FNS[name](c.true_idx[c.folds == f], c.arrays[suffix][c.folds == f])
                                      for f in names])
            for name, suffix in c.names}


# -- the same metrics for a whole chunk of bootstrap replicates at once ------------------------
# Each takes (b, m) integer sample weights (how often each test sample was redrawn) and gives
# (b,) values, each equal to the metric of the redrawn samples (tests/test_calibration.py).

def _weighted_mean(weights: np.ndarray, per_sample: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1)
    return np.divide(weights @ per_sample, total, out=np.full(len(weights), np.nan), where=total > 0)


def _weighted_debiased(weights: np.ndarray, confidence: np.ndarray, hit: np.ndarray) -> np.ndarray:
    onehot = np.eye(N_BINS)[_bins(confidence)]  # (m, bins)
    return _debiased_from_sums(weights @ onehot, weights @ (onehot * hit[:, None]),
                               weights @ (onehot * confidence[:, None]))


def _weighted_gap(weights: np.ndarray, confidence: np.ndarray, hit: np.ndarray) -> np.ndarray:
    bins = _bins(confidence)
    per_bin = np.zeros((len(confidence), N_BINS))
    per_bin[np.arange(len(confidence)), bins] = hit - confidence
    total = weights.sum(axis=1)
    return np.divide(np.abs(weights @ per_bin).sum(axis=1), total, out=np.full(len(weights), np.nan),
                     where=total > 0)


def _weighted_selective(weights: np.ndarray, true_idx: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray]:
    """AURC and risk at 80% coverage of the redrawn samples: in the stable confidence order, a
    sample drawn w times takes w consecutive positions, so its share of the mean risk is a
    difference of harmonic numbers."""
    order = np.argsort(-np.max(proba, axis=1), kind="stable")
    error = (np.argmax(proba, axis=1) != true_idx)[order].astype(float)
    w = weights[:, order]
    before = np.cumsum(w, axis=1) - w  # positions taken by more confident samples
    errors_before = np.cumsum(w * error, axis=1) - w * error
    total = w.sum(axis=1)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, int(total.max(initial=0)) + 1))])
    end, start = (before + w).astype(int), before.astype(int)
    share = (errors_before - error * before) * (harmonic[end] - harmonic[start]) + error * w
    aurc = np.divide(share.sum(axis=1), total, out=np.full(len(w), np.nan), where=total > 0)
    k = np.maximum(np.ceil(COVERAGE * total), 1)
    j = np.argmax(before + w >= k[:, None], axis=1)  # the sample holding position k
    rows = np.arange(len(w))
    at_k = errors_before[rows, j] + (k - before[rows, j]) * error[j]
    risk = np.divide(at_k, k, out=np.full(len(w), np.nan), where=total > 0)
    return {"aurc": aurc, "risk_at_80": risk}


def weighted_metrics(weights: np.ndarray, true_idx: np.ndarray, proba: np.ndarray,
                     selective: bool = True) -> dict[str, np.ndarray]:
    """Every metric of FNS for (b, m) sample weights (``selective=False``: the calibration ones only)."""
    top = np.argmax(proba, axis=1)
    onehot = np.eye(proba.shape[1])[true_idx]
    confidence, hit = proba[np.arange(len(top)), top], (top == true_idx).astype(float)
    out = {"ece": _weighted_gap(weights, confidence, hit), "ece_debiased": _weighted_debiased(weights, confidence, hit),
           "classwise_ece": np.mean([_weighted_gap(weights, proba[:, k], (true_idx == k).astype(float))
                                     for k in range(proba.shape[1])], axis=0),
           "brier": _weighted_mean(weights, np.sum((proba - onehot) ** 2, axis=1)),
           "nll": _weighted_mean(weights, -np.log(np.maximum(proba[np.arange(len(true_idx)), true_idx], PROBA_FLOOR)))}
    return {**out, **_weighted_selective(weights, true_idx, proba)} if selective else out


def calibration_replicates(c: Calibrated, fold_idx: np.ndarray, n_folds: int,
                           weights: np.ndarray) -> dict[str, np.ndarray]:
    """(b, F) per-fold values of every calibration metric for (b, n) sample weights (the scorer
    averages over folds: one replicate of the reported mean)."""
    out = {name + suffix: np.full((len(weights), n_folds), np.nan) for name, suffix in c.names}
    for f in range(n_folds):
        rows = np.flatnonzero(fold_idx == f)
        for suffix, probs in c.arrays.items():
            for name, values in weighted_metrics(weights[:, rows], c.true_idx[rows], probs[rows],
                                                 selective=not suffix).items():
                out[name + suffix][:, f] = values
    return out
