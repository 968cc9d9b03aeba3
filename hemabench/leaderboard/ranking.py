"""Significance-aware ranks: a paired bootstrap between every two encoders of a board.

Two encoders are compared on what they share. Where per-sample predictions are stored,
the shared test samples (matched by id and fold) are resampled together with the units and
structure of the results' own intervals: by patient when samples carry a ``group`` and by
id otherwise (an AML patient's runs stay together), redrawn within each fold, and the
difference of the fold-mean main metric is recomputed on each resample. Where only confusions
per repetition are stored, or the main metric is derived across variants (an area under
a curve), the per-repetition values are paired by index and their mean difference is
bootstrapped. A difference is significant when its 95% interval excludes zero.

An encoder's rank is 1 + the number of encoders significantly better than it, so
encoders that cannot be separated share a rank (a tie group) instead of a strict order.
No correction for multiple comparisons is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hemabench.results import Result
from hemabench.results.bootstrap import paired_difference
from hemabench.results.intervals import N_BOOTSTRAP, percentile_interval
from hemabench.results.metrics import metric_names


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    diff: float  # a - b
    ci95: tuple[float, float]
    n: int  # shared units
    unit: str  # what was resampled
    significant: bool


def _variant(result: Result) -> tuple[dict | None, str]:
    return result.variant_predictions(result.main_metric_variant), result.main_metric_name


def _shared_rows(pa: dict, pb: dict) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers in a and b of the samples both predicted (same id, fold and true label)."""
    index = {key: i for i, key in enumerate(zip(pa["id"], pa["fold"]))}
    rows = [(index[key], j) for j, key in enumerate(zip(pb["id"], pb["fold"])) if key in index]
    rows = [(i, j) for i, j in rows if pa["true"][i] == pb["true"][j]]
    return (np.array([r[0] for r in rows], dtype=int), np.array([r[1] for r in rows], dtype=int))


def _sample_bootstrap(pa: dict, pb: dict, metric: str, seed: int, n_boot: int):
    """(observed a-b, resampled a-b, units, unit name) over shared samples, or None if not possible.

    The units and their redraw are the ones of the result's own ci95 (patients, or samples,
    redrawn within each fold; the fold means compared)."""
    per_patient = metric == "patient_accuracy"
    if metric not in metric_names() and not per_patient:
        return None
    grouped = "group" in pa and "group" in pb
    if per_patient and not grouped:
        return None
    ia, ib = _shared_rows(pa, pb)
    if len(ia) == 0:
        return None
    keys = ("id", "fold", "true", "pred") + (("group",) if grouped else ())
    sa = {key: np.asarray(pa[key])[ia] for key in keys}
    sb = {**sa, "pred": np.asarray(pb["pred"])[ib]}
    labels = sorted(set(sa["true"]) | set(sa["pred"]) | set(sb["pred"]))
    observed, diffs, n_units = paired_difference(sa, sb, metric, labels, seed, n_boot)
    return observed, diffs, n_units, "patients" if grouped else "samples"


def _value_bootstrap(va: list, vb: list, seed: int, n_boot: int):
    """Mean difference of per-repetition (or per-fold) values paired by index. Repetition r draws
    the same support sets for every encoder, so where the stopping rule ran different counts the
    first min(counts) repetitions pair up."""
    k = min(len(va), len(vb))
    if k < 2:
        return None
    d = np.asarray(va[:k], dtype=float) - np.asarray(vb[:k], dtype=float)
    if not np.isfinite(d).all():
        return None
    rng = np.random.default_rng(seed)
    return float(d.mean()), d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1), len(d), "repetitions"


def compare(name_a: str, a: Result, name_b: str, b: Result, seed: int = 0,
            n_boot: int = N_BOOTSTRAP) -> Comparison:
    """Paired bootstrap of main(a) - main(b); not significant when nothing can be paired."""
    (pa, metric), (pb, _) = _variant(a), _variant(b)
    out = None
    if pa is not None and pb is not None and "id" in pa and "id" in pb:
        out = _sample_bootstrap(pa, pb, metric, seed, n_boot)
    if out is None:
        va, vb = a.main.values, b.main.values
        out = _value_bootstrap(va, vb, seed, n_boot)
        if out is not None and pa is not None and "id" in pa:
            out = (*out[:3], "folds")
    if out is None:
        return Comparison(name_a, name_b, float("nan"), (float("nan"), float("nan")), 0, "nothing shared", False)
    observed, diffs, n, unit = out
    low, high = percentile_interval(diffs)
    return Comparison(name_a, name_b, observed, (low, high), n, unit, bool(low > 0 or high < 0))


def tie_ranks(results: dict[str, Result], seed: int = 0, n_boot: int = N_BOOTSTRAP) -> tuple[dict[str, int], list[Comparison]]:
    """Rank = 1 + number of encoders significantly better; all pairwise comparisons."""
    names = sorted(results)
    comparisons = [compare(x, results[x], y, results[y], seed, n_boot)
                   for i, x in enumerate(names) for y in names[i + 1:]]
    better = {name: 0 for name in names}
    for c in comparisons:
        if c.significant:
            better[c.b if c.ci95[0] > 0 else c.a] += 1
    return {name: 1 + better[name] for name in names}, comparisons
