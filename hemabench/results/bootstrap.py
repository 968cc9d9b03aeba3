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
from scipy import sparse

from hemabench.results.metrics import _summary, encode

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

    @property
    def single_samples(self) -> bool:
        """Every unit is one sample and every stratum one fold (image-level, no repeated runs)."""
        return self.n_units == len(self.unit) and len(self.strata) == len(self.folds)

    def unit_counts(self, seed: int, n_boot: int):
        """Chunks of (b, n_units) draw counts, ``n_boot`` replicates in all, from ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        per_chunk = max(1, CHUNK_CELLS // max(1, len(self.unit)))
        for start in range(0, n_boot, per_chunk):
            yield self.counts(rng, min(per_chunk, n_boot - start))


def _codes(values: np.ndarray, names: list[str]) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[v] for v in values.tolist()], dtype=np.int64)


def fold_mean(per_fold: np.ndarray) -> np.ndarray:
    """(b, F) -> (b,): mean over the folds with a finite value (as the point estimate does)."""
    finite = np.isfinite(per_fold)
    n = finite.sum(axis=1)
    total = np.where(finite, per_fold, 0.0).sum(axis=1)
    return np.divide(total, n, out=np.full(len(per_fold), np.nan), where=n > 0)


def confusion_replicates(design: Design, true_idx: np.ndarray, pred_idx: np.ndarray, k: int,
                         counts: np.ndarray) -> np.ndarray:
    """(b, F, K, K) confusion matrices per replicate and fold, from (b, n_units) unit draw counts:
    one sparse product with each unit's per-fold confusion counts (a patient is one row)."""
    b, f = len(counts), len(design.folds)
    cells = (design.fold * k + true_idx) * k + pred_idx
    per_unit = sparse.csr_matrix((np.ones(len(cells)), (design.unit, cells)), shape=(design.n_units, f * k * k))
    return np.asarray((per_unit.T @ counts.T).T).reshape(b, f, k, k)


def cell_count_replicates(design: Design, cells: np.ndarray, seed: int, n_boot: int):
    """For single-sample units: (codes, chunks of (b, F, J) counts of each distinct ``cells`` code).

    Redrawing G - 1 of a fold's G samples, seen only through the cells (e.g. confusion-matrix
    cells) they fall in, is a multinomial draw over the fold's occupied cells, so a replicate
    costs the number of cells, not of samples: 100,000 test images cost what 400 do."""
    codes, compact = np.unique(cells, return_inverse=True)
    compact = compact.reshape(-1)
    n_folds, n_codes = len(design.folds), len(codes)
    sizes = np.zeros((n_folds, n_codes))
    np.add.at(sizes, (design.fold, compact), 1.0)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, CHUNK_CELLS // max(1, n_folds * n_codes))

    def chunks():
        for start in range(0, n_boot, per_chunk):
            b = min(per_chunk, n_boot - start)
            out = np.zeros((b, n_folds, n_codes))
            for f in range(n_folds):
                occupied = np.flatnonzero(sizes[f])
                g = sizes[f].sum()
                out[:, f, occupied] = rng.multinomial(max(1, int(g) - 1), sizes[f, occupied] / g, size=b)
            yield out

    return codes, chunks()


def headline_from_cells(counts: np.ndarray, cell_of_code: np.ndarray, k: int, names) -> dict[str, np.ndarray]:
    """Fold-mean headline metrics from (b, F, J) counts of codes, code j in confusion cell ``cell_of_code[j]``."""
    onehot = np.zeros((len(cell_of_code), k * k))
    onehot[np.arange(len(cell_of_code)), cell_of_code] = 1.0
    b, n_folds = counts.shape[:2]
    with np.errstate(invalid="ignore", divide="ignore"):
        summary = _summary((counts @ onehot).reshape(b, n_folds, k, k))
    return {name: fold_mean(summary[name]) for name in names}


def headline_replicates(design, true_idx, pred_idx, k, counts, names) -> dict[str, np.ndarray]:
    """Fold-mean of each headline metric, per replicate ((b, n_units) unit draw counts)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        summary = _summary(confusion_replicates(design, true_idx, pred_idx, k, counts))
    return {name: fold_mean(summary[name]) for name in names}


def patient_accuracy_replicates(design: Design, correct: np.ndarray, group: np.ndarray,
                                counts: np.ndarray) -> np.ndarray:
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
    w = counts[:, design.unit[first]]  # (b, pairs): a patient's draws in its fold
    onehot = np.zeros((n_pairs, len(design.folds)))
    onehot[np.arange(n_pairs), pair_fold] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_fold = (w * accuracy) @ onehot / (w @ onehot)
    return fold_mean(per_fold)


def weighted_aucs(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """(b,) one-vs-rest ROC-AUC and average precision of one class under per-sample weights.

    Samples are sorted by score once; tied scores form one threshold (as in scikit-learn), whose
    weighted positives and negatives are differences of cumulative sums at the ends of the ties.
    NaN where a replicate lacks positives or negatives (scikit-learn leaves such a class out).
    """
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])  # last sample of each distinct score
    w = weights[:, order]
    pos_mask = positive[order]
    cum_pos = np.cumsum(w * pos_mask, axis=1)[:, ends]  # weight of positives scored <= each threshold
    cum_neg = np.cumsum(w * ~pos_mask, axis=1)[:, ends]
    pos = np.diff(cum_pos, axis=1, prepend=0.0)
    neg = np.diff(cum_neg, axis=1, prepend=0.0)
    total_pos, total_neg = cum_pos[:, -1], cum_neg[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        roc = (pos * (cum_neg - 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)  # P(pos > neg) + P(tie)/2
        tps = total_pos[:, None] - cum_pos + pos  # positives scored >= each threshold
        fps = total_neg[:, None] - cum_neg + neg
        ap = (pos * np.nan_to_num(tps / (tps + fps))).sum(axis=1) / total_pos  # recall gain x precision
    defined = (total_pos > 0) & (total_neg > 0)
    return {"roc_auc": np.where(defined, roc, np.nan), "pr_auc": np.where(defined, ap, np.nan)}


def macro_auc_replicates(design: Design, true_idx: np.ndarray, proba: np.ndarray, k: int,
                         weights: np.ndarray) -> dict[str, np.ndarray]:
    """Fold-mean of the macro (over classes with positives and negatives) ROC-AUC and AP."""
    per_fold = {key: np.full((len(weights), len(design.folds)), np.nan) for key in ("roc_auc", "pr_auc")}
    for f in range(len(design.folds)):
        rows = np.flatnonzero(design.fold == f)
        w = weights[:, rows]
        per_class = [weighted_aucs(proba[rows, j], true_idx[rows] == j, w) for j in range(k)]
        for key, out in per_fold.items():
            stacked = np.stack([c[key] for c in per_class], axis=1)
            seen = np.isfinite(stacked)
            n = seen.sum(axis=1)
            out[:, f] = np.divide(np.where(seen, stacked, 0.0).sum(axis=1), n,
                                  out=np.full(len(weights), np.nan), where=n > 0)
    return {key: fold_mean(out) for key, out in per_fold.items()}


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

    a, b = score(np.ones((1, design.n_units)))
    if design.single_samples and metric != "patient_accuracy":  # joint (a cell, b cell) counts
        cells = [true * k + pred for pred in preds]
        codes, chunks = cell_count_replicates(design, cells[0] * k * k + cells[1], seed, n_boot)
        diffs = [headline_from_cells(c, codes // (k * k), k, [metric])[metric]
                 - headline_from_cells(c, codes % (k * k), k, [metric])[metric] for c in chunks]
    else:
        diffs = [np.subtract(*score(c)) for c in design.unit_counts(seed, n_boot)]
    return float(a[0] - b[0]), np.concatenate(diffs), design.n_units
