"""ROC-AUC and average precision in plain numpy: scikit-learn's numbers without its per-call checks.

The scorer bootstraps these per class hundreds of times; scikit-learn's input validation
costs ~5 ms a call, the arithmetic microseconds. ``tests/test_calibration.py`` checks
both against ``roc_auc_score`` / ``average_precision_score``, ties included.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney form (average ranks for ties) = the area under the ROC curve."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """sum over distinct thresholds (descending) of (recall step) x precision, as scikit-learn."""
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    s, hit = np.asarray(score, dtype=float)[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(hit)[last]
    precision, recall = tp / (last + 1), tp / positive.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
