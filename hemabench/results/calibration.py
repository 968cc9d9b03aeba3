"""Calibration and selective prediction, from stored class probabilities.

Accuracy says how often an encoder's probe is right; these say whether its confidence can
be trusted (docs/metrics.md has the definitions and why a lab cares):

* ``ece``: expected calibration error, 15 equal-width bins on the top-class confidence;
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

import numpy as np
from scipy.optimize import minimize_scalar

from hemabench.metrics import aggregate, encode
from hemabench.results.packing import PROBA_DECIMALS, pack_proba, proba_array

N_BINS = 15
PROBA_FLOOR = 0.5 * 10.0**-PROBA_DECIMALS  # half the list form's storage step: a stored 0 means "below 5e-7"
COVERAGE = 0.8  # risk_at_80
SLICE_FRACTION = 0.2  # share of each class's training cells held out to fit the temperature
T_BOUNDS = (0.05, 20.0)
CALIBRATION_METRICS = ("ece", "classwise_ece", "brier", "nll")


def _binned_gap(confidence: np.ndarray, hit: np.ndarray, n_bins: int = N_BINS) -> float:
    """sum over bins of (share of samples) * |mean hit - mean confidence|; bins (0,1/B], ..., ((B-1)/B, 1]."""
    if len(confidence) == 0:
        return float("nan")
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, hit, n_bins) - np.bincount(bins, confidence, n_bins))
    return float(gap.sum() / count.sum())


def ece(true_idx: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error on the top-class confidence (ties: the first class wins, as argmax)."""
    top = np.argmax(proba, axis=1)
    return _binned_gap(proba[np.arange(len(top)), top], (top == true_idx).astype(float), n_bins)


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
    (0 for a label the model never saw)."""
    out = np.zeros((len(proba), len(labels)))
    lookup = {label: j for j, label in enumerate(labels)}
    for i, c in enumerate(classes):
        out[:, lookup[str(c)]] = proba[:, i]
    return out


def slice_payload(ids, folds, true, proba, fraction: float, seed: int) -> dict:
    """The ``calibration`` entry of a variant: the held-out slice's stored predictions."""
    return {"fraction": fraction, "seed": seed, "id": [str(i) for i in ids], "fold": [str(f) for f in folds],
            "true": [str(t) for t in true], "proba": pack_proba(proba)}


def _scores(true_idx: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    return {"ece": ece(true_idx, proba), "classwise_ece": classwise_ece(true_idx, proba),
            "brier": brier(true_idx, proba), "nll": nll(true_idx, proba)}


def _temperatures(p: dict, labels: list[str], folds: np.ndarray) -> dict[str, float]:
    """Per test fold, the temperature fitted on that fold's stored training slice."""
    cal = p.get("calibration")
    if not isinstance(cal, dict):
        return {}
    cal_folds = np.asarray(cal["fold"], dtype=str)
    cal_true, cal_proba = encode(np.asarray(cal["true"], dtype=str), labels), proba_array(cal["proba"])
    return {f: fit_temperature(cal_true[cal_folds == f], cal_proba[cal_folds == f])
            for f in dict.fromkeys(folds.tolist()) if np.any(cal_folds == f)}


def calibration_metrics(p: dict, labels: list[str], interval) -> dict[str, dict]:
    """Calibration and selective-prediction metrics of one variant with ``proba``.

    ``interval(fn, n)`` gives the 95% interval of ``fn(rows)`` over resampled test rows
    (the scorer's bootstrap). Values are per fold; temperature-scaled numbers appear only
    where every fold has a stored training slice."""
    folds = np.asarray(p["fold"], dtype=str)
    names = list(dict.fromkeys(folds.tolist()))
    true_idx = encode(np.asarray(p["true"], dtype=str), labels)
    proba = proba_array(p["proba"])
    fns = {"ece": ece, "classwise_ece": classwise_ece, "brier": brier, "nll": nll, "aurc": aurc, "risk_at_80": risk_at}
    arrays = {"": proba}
    temperatures = _temperatures(p, labels, folds)
    if temperatures and set(temperatures) == set(names):
        scaled = proba.copy()
        for f, t in temperatures.items():
            scaled[folds == f] = apply_temperature(proba[folds == f], t)
        arrays["_ts"] = scaled
    out = {}
    for suffix, probs in arrays.items():
        for name, fn in fns.items():
            if suffix and name not in CALIBRATION_METRICS:
                continue
            values = [fn(true_idx[folds == f], probs[folds == f]) for f in names]
            out[name + suffix] = {**aggregate(values), "ci95": interval(
                lambda r, fn=fn, probs=probs: fn(true_idx[r], probs[r]), len(true_idx))}
    return out
