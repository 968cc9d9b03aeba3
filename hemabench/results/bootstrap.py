"""Bootstrap intervals of the reported statistic, the mean over folds, vectorised.

A reported number is the mean over folds (or runs) of a per-fold metric. One bootstrap
replicate redraws each fold's test units with replacement (patients where samples carry a
``group``, single samples otherwise), recomputes every fold's metric on its redrawn set and
averages over folds, so the interval is an interval *for that mean*, with the design's
fold structure kept. Runs that share a test fold (``f0/s0``, ``f0/s1``: seeds of one
rotation) share their redraw: they scored the same patients.

Nothing loops over replicates: a redraw is a (replicates x units) count matrix, each
sample's weight is its unit's count, and confusion matrices, per-patient accuracies and
rank-based ROC/PR AUCs are computed for a whole chunk of replicates at once from weighted
``bincount``/cumulative sums. Integer weights make each replicate equal to scoring the
redrawn samples with scikit-learn (``tests/test_bootstrap.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hemabench.metrics import _summary, encode

CHUNK_CELLS = 4_000_000  # replicate x sample weights held at once (32 MB of float64)


def stratum(fold: str) -> str:
    """Runs ``<test fold>/<seed>`` are redrawn together: they tested the same units."""
    return str(fold).split("/", 1)[0]


@dataclass
class Design:
    """Which fold each sample is in, and which unit (patient or sample) it is redrawn with."""

    fold: np.ndarray  # (n,) fold index into ``folds``
    folds: list[str]
    unit: np.ndarray  # (n,) index into the per-stratum unit list: column of the count matrix
    n_units: int
    strata: list[np.ndarray]  # per stratum, its columns of the count matrix

    @classmethod
    def build(cls, fold, units=None) -> Design:
        fold = np.asarray(fold, dtype=str)
        folds = list(dict.fromkeys(fold.tolist()))
        fold_idx = _codes(fold, folds)
        units = np.arange(len(fold)) if units is None else np.asarray(units, dtype=str)
        strata_of = _codes(np.array([stratum(f) for f in fold.tolist()], dtype=str),
                           list(dict.fromkeys(stratum(f) for f in folds)))
        _, unit_code = np.unique(units, return_inverse=True)
        unit_code = unit_code.reshape(-1).astype(np.int64)
        n_codes = int(unit_code.max()) + 1 if len(unit_code) else 1
        keys, unit = np.unique(strata_of * n_codes + unit_code, return_inverse=True)
        strata = [np.flatnonzero(keys // n_codes == s) for s in range(int(strata_of.max()) + 1 if len(fold) else 0)]
        return cls(fold_idx, folds, unit.reshape(-1), len(keys), strata)

    def counts(self, rng: np.random.Generator, b: int) -> np.ndarray:
        """(b, n_units) draw counts: a stratum of G units redraws G - 1 of them (at least one).

        Drawing G - 1 rather than G (McCarthy & Snowden 1985) makes the bootstrap variance
        of a stratified mean unbiased; with G draws it is too small by (G - 1)/G, which
        matters for folds of a few dozen patients (coverage ~92% instead of 95%)."""
        out = np.zeros((b, self.n_units))
        for cols in self.strata:
            m = max(1, len(cols) - 1)
            draws = rng.integers(0, len(cols), (b, m)) + (np.arange(b) * len(cols))[:, None]
            out[:, cols] = np.bincount(draws.ravel(), minlength=b * len(cols)).reshape(b, len(cols))
        return out

    def weights(self, seed: int, n_boot: int):
        """Chunks of (b, n) sample weights, ``n_boot`` replicates in all, from ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        per_chunk = max(1, CHUNK_CELLS // max(1, len(self.unit)))
        for start in range(0, n_boot, per_chunk):
            yield self.counts(rng, min(per_chunk, n_boot - start))[:, self.unit]


def _codes(values: np.ndarray, names: list[str]) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[v] for v in values.tolist()], dtype=np.int64)


def _fold_mean(per_fold: np.ndarray) -> np.ndarray:
    """(b, F) -> (b,): mean over the folds with a finite value (as the point estimate does)."""
    finite = np.isfinite(per_fold)
    n = finite.sum(axis=1)
    total = np.where(finite, per_fold, 0.0).sum(axis=1)
    return np.divide(total, n, out=np.full(len(per_fold), np.nan), where=n > 0)


def confusion_replicates(design: Design, true_idx: np.ndarray, pred_idx: np.ndarray, k: int,
                         weights: np.ndarray) -> np.ndarray:
    """(b, F, K, K) weighted confusion matrices per replicate and fold."""
    b, f = len(weights), len(design.folds)
    cells = (design.fold * k + true_idx) * k + pred_idx
    offsets = (np.arange(b) * f * k * k)[:, None]
    flat = np.bincount((cells[None, :] + offsets).ravel(), weights.ravel(), b * f * k * k)
    return flat.reshape(b, f, k, k)


def headline_replicates(design, true_idx, pred_idx, k, weights, names) -> dict[str, np.ndarray]:
    """Fold-mean of each headline metric, per replicate."""
    with np.errstate(invalid="ignore", divide="ignore"):
        summary = _summary(confusion_replicates(design, true_idx, pred_idx, k, weights))
    return {name: _fold_mean(summary[name]) for name in names}


def patient_accuracy_replicates(design: Design, correct: np.ndarray, group: np.ndarray,
                                weights: np.ndarray) -> np.ndarray:
    """Fold-mean of (mean over redrawn patients of each one's fraction correct)."""
    _, group_code = np.unique(np.asarray(group, dtype=str), return_inverse=True)
    _, pair = np.unique(design.fold * (int(group_code.max()) + 1) + group_code.reshape(-1), return_inverse=True)
    pair = pair.reshape(-1)
    n_pairs = int(pair.max()) + 1
    size = np.bincount(pair, minlength=n_pairs)
    accuracy = np.bincount(pair, correct.astype(float), n_pairs) / size
    first = np.zeros(n_pairs, dtype=np.int64)
    first[pair[::-1]] = np.arange(len(pair))[::-1]  # one sample per (fold, patient): its weight is the pair's
    pair_fold = design.fold[first]
    w = weights[:, first]  # (b, pairs)
    onehot = np.zeros((n_pairs, len(design.folds)))
    onehot[np.arange(n_pairs), pair_fold] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_fold = (w * accuracy) @ onehot / (w @ onehot)
    return _fold_mean(per_fold)


def _weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray, key: str) -> np.ndarray:
    """(b,) one-vs-rest ROC-AUC or average precision of one class under per-sample weights.

    Samples are grouped by distinct score (ties share a threshold, as in scikit-learn); per
    replicate the weighted positives and negatives at each score come from one bincount.
    """
    b = len(weights)
    values, level = np.unique(score, return_inverse=True)
    u = len(values)
    offsets = (np.arange(b) * u)[:, None]
    index = (level[None, :] + offsets).ravel()
    pos = np.bincount(index, (weights * positive).ravel(), b * u).reshape(b, u)
    neg = np.bincount(index, (weights * ~positive).ravel(), b * u).reshape(b, u)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if key == "roc_auc":  # P(score_pos > score_neg) + 1/2 P(tie)
            below = np.cumsum(neg, axis=1) - neg
            out = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        else:  # average precision: sum over thresholds (high to low) of recall gain x precision
            tps, fps = np.cumsum(pos[:, ::-1], axis=1), np.cumsum(neg[:, ::-1], axis=1)
            precision = np.nan_to_num(tps / (tps + fps))
            out = (pos[:, ::-1] * precision).sum(axis=1) / total_pos
    return np.where((total_pos > 0) & (total_neg > 0), out, np.nan)


def macro_auc_replicates(design: Design, true_idx: np.ndarray, proba: np.ndarray, k: int,
                         weights: np.ndarray, key: str) -> np.ndarray:
    """Fold-mean of the macro (over classes with positives and negatives) ROC-AUC or AP."""
    per_fold = np.full((len(weights), len(design.folds)), np.nan)
    for f in range(len(design.folds)):
        rows = np.flatnonzero(design.fold == f)
        per_class = np.stack([_weighted_auc(proba[rows, j], true_idx[rows] == j, weights[:, rows], key)
                              for j in range(k)], axis=1)
        seen = np.isfinite(per_class)
        n = seen.sum(axis=1)
        per_fold[:, f] = np.divide(np.where(seen, per_class, 0.0).sum(axis=1), n,
                                   out=np.full(len(weights), np.nan), where=n > 0)
    return _fold_mean(per_fold)


def percentile_interval(replicates: np.ndarray, estimate: float | None = None, alpha: float = 0.05) -> list[float]:
    """The 2.5-97.5 percentiles of the replicates, moved so that their median sits on ``estimate``.

    Redrawing can shift every replicate one way for reasons that are artifacts of resampling,
    not of the population: a fold of four patients redrawn loses a class in most replicates
    (its macro F1 drops), duplicated tied scores raise average precision. A plain percentile
    interval then excludes the number it stands beside. Re-centring on the median keeps the
    bootstrap's width and shape and always contains the estimate (the median lies between
    the percentiles); where the replicates are centred (accuracy), it changes nothing.
    Metrics are proportions, so the ends are clipped to [0, 1].
    """
    finite = np.asarray(replicates, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return [float("nan")] * 2
    low, median, high = np.quantile(finite, [alpha / 2, 0.5, 1 - alpha / 2])
    if estimate is not None and np.isfinite(estimate):
        shift = estimate - median
        low, high = max(0.0, min(low + shift, estimate)), min(1.0, max(high + shift, estimate))
    return [float(low), float(high)]


def paired_difference(pa: dict, pb: dict, metric: str, labels: list[str], seed: int, n_boot: int):
    """(observed, replicates) of fold-mean ``metric`` of a minus b on the same samples (rows
    aligned), both scored on each replicate's one redraw of units: the tie-group bootstrap."""
    design = Design.build(pa["fold"], pa.get("group", pa.get("id")))
    k = len(labels)
    true = encode(np.asarray(pa["true"], dtype=str), labels)
    preds = [encode(np.asarray(p["pred"], dtype=str), labels) for p in (pa, pb)]

    def score(weights):
        if metric == "patient_accuracy":
            return [patient_accuracy_replicates(design, true == pred, np.asarray(pa["group"], dtype=str), weights)
                    for pred in preds]
        return [headline_replicates(design, true, pred, k, weights, [metric])[metric] for pred in preds]

    a, b = score(np.ones((1, len(true))))
    diffs = [np.subtract(*score(w)) for w in design.weights(seed, n_boot)]
    return float(a[0] - b[0]), np.concatenate(diffs), design.n_units
