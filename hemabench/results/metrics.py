"""Classification metrics computed from the confusion matrix alone.

Everything here is a function of the (K x K) confusion counts, so any number in a
results file can be recomputed from the stored predictions, and the bootstrap can
score 1000 resamples at once from a stack of confusion matrices.  The numbers equal
scikit-learn's (``tests/test_metrics.py`` checks each one):

* accuracy            = ``accuracy_score``
* balanced_accuracy   = ``balanced_accuracy_score``: mean recall over the classes that
  occur in ``y_true``; a class that is only predicted (or absent) does not count.
* weighted_f1         = ``f1_score(average="weighted")``: F1 weighted by true support.
* macro_f1            = ``f1_score(average="macro", zero_division=0)`` without a
  ``labels`` argument: mean F1 over classes occurring in ``y_true`` or ``y_pred``, so a
  class of the label list that the test split lacks and nobody predicts is not a 0.
* per_class           = ``precision_recall_fscore_support(labels=all, zero_division=0)``:
  every label of ``labels``, 0.0 where a ratio is 0/0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hemabench.results.intervals import mean_interval


def encode(y, labels: Sequence[str]) -> np.ndarray:
    """Class indices of ``y``, given either as label names or as integer indices into ``labels``."""
    arr = np.asarray(y).reshape(-1)
    n_classes = len(labels)
    if len(set(labels)) != n_classes:
        raise ValueError(f"labels must be unique, got {list(labels)}")
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"class indices must lie in [0, {n_classes}), got {arr.min()}..{arr.max()}")
        return arr.astype(np.int64)
    lookup = {label: i for i, label in enumerate(labels)}
    uniques, inverse = np.unique(arr, return_inverse=True)
    unknown = [u for u in uniques.tolist() if u not in lookup]
    if unknown:
        raise ValueError(f"labels not in the label list: {unknown[:10]}")
    return np.array([lookup[u] for u in uniques.tolist()], dtype=np.int64)[inverse.reshape(-1)]


def confusion_counts(true_idx: np.ndarray, pred_idx: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) integer counts, rows = true class, columns = predicted class."""
    if len(true_idx) != len(pred_idx):
        raise ValueError(f"y_true has {len(true_idx)} samples but y_pred has {len(pred_idx)}")
    cells = np.bincount(true_idx * n_classes + pred_idx, minlength=n_classes * n_classes)
    return cells.reshape(n_classes, n_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with 0/0 -> 0 (scikit-learn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class counts and ratios for one or a stack (..., K, K) of confusion matrices."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support, predicted = cm.sum(axis=-1), cm.sum(axis=-2)
    return {
        "tp": tp,
        "support": support,
        "predicted": predicted,
        "sensitivity": _ratio(tp, support),
        "precision": _ratio(tp, predicted),
        "f1": _ratio(2.0 * tp, support + predicted),
    }


Compute = Callable[[dict], np.ndarray]


@dataclass(frozen=True)
class Headline:
    """A headline metric: ``compute`` maps the per-class counts and ratios of one or a stack of
    confusion matrices (``_per_class``) to its value(s); ``words`` name it on the leaderboard.
    Higher is better."""

    words: str
    compute: Compute


# The one registry of headline metrics: every variant of every result gets each, with an interval,
# in runs and in ``validate`` alike (hemabench.results.scoring), and the leaderboard can rank by it.
# Consumers read it when called (``metric_names()``), so a metric a plugin registers counts too.
HEADLINE: dict[str, Headline] = {}
# Metrics that are not headline ones but share their key space (``<variant>/<name>``): computed by a task
# (BreakHis's patient-level accuracy) or typed from papers. A headline metric may not take these names.
OTHER_METRICS = ("patient_accuracy", "roc_auc_macro", "pr_auc_macro")


def register_metric(name: str, words: str) -> Callable[[Compute], Compute]:
    """Decorator adding ``compute`` to ``HEADLINE`` as ``name`` (its result-file key), ``words`` on the site.

    A second metric of the same name is refused: it would silently change every number of that key."""
    if not name.isidentifier():
        raise ValueError(f"metric name {name!r} must be an identifier (it is the last part of a result key)")
    if name in OTHER_METRICS:
        raise ValueError(f"metric name {name!r} is taken: results already use it for another number")

    def add(compute: Compute) -> Compute:
        if name in HEADLINE:
            raise ValueError(f"headline metric {name!r} is already registered ({HEADLINE[name].compute.__module__})")
        HEADLINE[name] = Headline(words, compute)
        return compute

    return add


def metric_names() -> tuple[str, ...]:
    """The registered headline metrics, in registration order (the key order of result files)."""
    return tuple(HEADLINE)


def known_metric_names() -> tuple[str, ...]:
    """Every name a ``<variant>/<name>`` metric key may end with, per-class keys aside: the headline
    metrics and ``OTHER_METRICS`` (what a published value or a ranking column may name)."""
    return metric_names() + OTHER_METRICS


@register_metric("accuracy", "accuracy")
def _accuracy(pc: dict) -> np.ndarray:
    return pc["tp"].sum(axis=-1) / pc["support"].sum(axis=-1)


@register_metric("balanced_accuracy", "balanced accuracy")
def _balanced_accuracy(pc: dict) -> np.ndarray:
    in_true = pc["support"] > 0
    return (pc["sensitivity"] * in_true).sum(axis=-1) / in_true.sum(axis=-1)


@register_metric("weighted_f1", "weighted F1")
def _weighted_f1(pc: dict) -> np.ndarray:
    return (pc["f1"] * pc["support"]).sum(axis=-1) / pc["support"].sum(axis=-1)


@register_metric("macro_f1", "macro F1")
def _macro_f1(pc: dict) -> np.ndarray:
    seen = (pc["support"] > 0) | (pc["predicted"] > 0)
    return (pc["f1"] * seen).sum(axis=-1) / seen.sum(axis=-1)


def _summary(cm: np.ndarray) -> dict[str, np.ndarray]:
    """The headline metrics of one or a stack of confusion matrices."""
    pc = _per_class(cm)
    return {name: metric.compute(pc) for name, metric in HEADLINE.items()}


def classification_metrics(y_true, y_pred, labels: Sequence[str]) -> dict:
    """Headline metrics (floats in [0, 1]), per-class metrics and the confusion matrix."""
    labels = list(labels)
    true_idx, pred_idx = encode(y_true, labels), encode(y_pred, labels)
    if len(true_idx) == 0:
        raise ValueError("no samples to score")
    cm = confusion_counts(true_idx, pred_idx, len(labels))
    pc = _per_class(cm)
    out: dict = {name: float(value) for name, value in _summary(cm).items()}
    out["per_class"] = {
        label: {
            "sensitivity": float(pc["sensitivity"][i]),
            "precision": float(pc["precision"][i]),
            "f1": float(pc["f1"][i]),
            "support": int(cm[i].sum()),
        }
        for i, label in enumerate(labels)
    }
    out["confusion_matrix"] = {"labels": labels, "counts": cm.tolist()}
    return out


def aggregate(values: Sequence[float]) -> dict:
    """Mean and spread over runs (folds or seeds).

    ``std`` is the sample standard deviation (ddof=1), the usual estimate when the runs
    are a sample of possible splits/seeds; with a single run it is 0.0, not NaN, so
    tables stay printable.
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("aggregate() needs at least one value")
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": float(np.mean(vals)), "std": std, "values": vals}


def over_repetitions(values: Sequence[float]) -> dict:
    """Mean over repeated runs with two different bands, named so.

    ``ci95``: Student's t interval of the *mean* (``intervals.mean_interval``), the interval for the
    printed number. ``spread95``: the 2.5-97.5 percentiles of the single runs, what one run of the
    protocol may give; much wider, and not a confidence interval.
    """
    out = aggregate(values)
    vals = np.asarray(out["values"], dtype=float)
    finite = vals[np.isfinite(vals)]
    if not len(finite):
        return {**out, "ci95": [float("nan")] * 2, "spread95": [float("nan")] * 2}
    return {**out, "ci95": mean_interval(finite),
            "spread95": [float(v) for v in np.percentile(finite, [2.5, 97.5])]}
