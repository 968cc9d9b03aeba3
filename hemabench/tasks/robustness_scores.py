"""The numbers of task ``robustness``, derived from its stored predictions only.

Every variant holds the same capped test cells: ``clean`` (the probe on the clean
embeddings) and ``<family>-s<k>`` (the same probe on the cells perturbed by ``family`` at
severity ``k``, with each cell's ``cosine`` similarity between its clean and perturbed
embedding). From these, per view: the mean cosine, the drop in balanced accuracy from clean
and the drop in each class's sensitivity; per family: the normalised area under balanced
accuracy over severity (trapezoids over 0..max severity, severity 0 = clean, divided by
max severity x clean balanced accuracy: 1 = no loss at any severity, 0.5 = a straight fall to
zero); and ``robustness/normalised_auc``, the mean of that area over the acquisition
families (the geometric control left out). Intervals: the 2.5-97.5 percentiles of a paired
bootstrap, the same within-fold redraw of cells (``results.bootstrap.Design``) for every
variant of a replicate, so each interval is one for the number it is printed with; its 2.5-97.5
percentiles are re-centred on the estimate and clipped to the number's range (``bounds_of``), as
every such hemabench interval is (``intervals.percentile_interval``).
"""

from __future__ import annotations

import numpy as np

from hemabench.results.bootstrap import Design, confusion_replicates, fold_mean
from hemabench.results.intervals import DIFFERENCE, N_BOOTSTRAP, percentile_interval
from hemabench.results.metrics import encode

CLEAN, SUMMARY = "clean", "robustness"


def view_variant(family: str, severity: int) -> str:
    return f"{family}-s{int(severity)}"


def normalised_auc(clean: np.ndarray, curve: np.ndarray, severities: list[int]) -> np.ndarray:
    """(b,) area under balanced accuracy over [0] + severities (trapezoids) / (max severity x clean)."""
    xs = np.asarray([0, *severities], dtype=float)
    ys = np.column_stack([clean, curve])  # (b, 1 + severities)
    area = ((ys[:, 1:] + ys[:, :-1]) / 2 * np.diff(xs)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return area / (xs[-1] * clean)


class _Cells:
    """The shared cells: fold design, true classes, and per variant predictions (and cosines)."""

    def __init__(self, predictions: dict, labels: list[str], families: list[str], severities: list[int]) -> None:
        clean = predictions[CLEAN]
        self.k = len(labels)
        self.design = Design.build(clean["fold"], clean["id"])
        self.true = encode(np.asarray(clean["true"], dtype=str), labels)
        self.pred, self.cosine = {CLEAN: encode(np.asarray(clean["pred"], dtype=str), labels)}, {}
        for family in families:
            for s in severities:
                name = view_variant(family, s)
                p = predictions.get(name)
                if p is None:
                    raise ValueError(f"robustness predictions lack variant {name!r}")
                if list(p["id"]) != list(clean["id"]) or list(p["fold"]) != list(clean["fold"]):
                    raise ValueError(f"variant {name!r} does not hold the clean variant's cells in its order")
                self.pred[name] = encode(np.asarray(p["pred"], dtype=str), labels)
                self.cosine[name] = np.asarray(p["cosine"], dtype=float)

    def recalls(self, name: str, counts: np.ndarray) -> np.ndarray:
        """(b, F, K) per-fold sensitivity of each class (NaN where a class has no cell in the redraw)."""
        cm = confusion_replicates(self.design, self.true, self.pred[name], self.k, counts)
        support = cm.sum(axis=3)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diagonal(cm, axis1=2, axis2=3) / support, np.nan)

    def cosine_mean(self, name: str, counts: np.ndarray) -> np.ndarray:
        """(b, F) weighted mean cosine per fold."""
        w = counts[:, self.design.unit]  # (b, n)
        onehot = np.zeros((len(self.design.unit), len(self.design.folds)))
        onehot[np.arange(len(self.design.unit)), self.design.fold] = 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w * self.cosine[name]) @ onehot / (w @ onehot)


def _balanced(recalls: np.ndarray) -> np.ndarray:
    """(b, F, K) -> (b, F): mean over the classes present."""
    seen = np.isfinite(recalls)
    n = seen.sum(axis=2)
    return np.divide(np.where(seen, recalls, 0.0).sum(axis=2), n, out=np.full(n.shape, np.nan), where=n > 0)


def _statistics(cells: _Cells, counts: np.ndarray, labels: list[str], families: list[str], severities: list[int],
                control: str) -> dict[str, np.ndarray]:
    """Every derived number under one batch of draw counts: name -> (b, F) per fold, or (b, 1) overall."""
    out: dict[str, np.ndarray] = {}
    clean_recall = cells.recalls(CLEAN, counts)
    clean_ba = _balanced(clean_recall)
    aucs = {}
    for family in families:
        curve = []
        for s in severities:
            name = view_variant(family, s)
            recall = cells.recalls(name, counts)
            ba = _balanced(recall)
            curve.append(fold_mean(ba))
            out[f"{name}/cosine"] = cells.cosine_mean(name, counts)
            out[f"{name}/drop_balanced_accuracy"] = clean_ba - ba
            for j, label in enumerate(labels):
                out[f"{name}/drop_sensitivity_{label}"] = clean_recall[:, :, j] - recall[:, :, j]
        aucs[family] = normalised_auc(fold_mean(clean_ba), np.column_stack(curve), severities)
        out[f"{family}/normalised_auc"] = aucs[family][:, None]
    acquisition = [f for f in families if f != control] or families
    out[f"{SUMMARY}/normalised_auc"] = np.column_stack([aucs[f] for f in acquisition])  # (b, families): their mean
    return out


def bounds_of(name: str) -> tuple[float, float]:
    """The range of a derived number: a normalised area is >= 0 (above 1 where a perturbation helps),
    a cosine or a drop of two proportions lies in [-1, 1]."""
    return (0.0, np.inf) if name.endswith("/normalised_auc") else DIFFERENCE


def robustness_scores(predictions: dict, labels: list[str], families: list[str], severities: list[int],
                      control: str, seed: int = 0, n_boot: int = N_BOOTSTRAP) -> dict[str, dict]:
    """The derived metrics, each ``{mean, std, values, ci95}`` (values: per fold, or per family for
    the headline mean; NaN-free values only)."""
    cells = _Cells(predictions, labels, families, severities)
    point = _statistics(cells, np.ones((1, cells.design.n_units)), labels, families, severities, control)
    boot: dict[str, list] = {name: [] for name in point}
    for counts in cells.design.unit_counts(seed, n_boot):
        for name, values in _statistics(cells, counts, labels, families, severities, control).items():
            boot[name].append(fold_mean(values))
    out = {}
    for name, values in point.items():
        finite = values[0][np.isfinite(values[0])]
        replicates = np.concatenate(boot[name])
        replicates = replicates[np.isfinite(replicates)]
        if not len(finite) or not len(replicates):
            continue  # e.g. a class without test cells: no drop to report
        std, mean = (float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0), float(np.mean(finite))
        out[name] = {"mean": mean, "std": std, "values": [float(v) for v in finite],
                     "ci95": percentile_interval(replicates, mean, bounds_of(name))}
    return out
