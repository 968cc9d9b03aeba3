"""The fold-mean bootstrap: each replicate equals scikit-learn on the redrawn samples, and the
95% interval covers a known truth about 95% of the time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

from hemabench.results import Result
from hemabench.results.bootstrap import (
    Design,
    cell_count_replicates,
    headline_from_cells,
    headline_replicates,
    macro_auc_replicates,
    patient_accuracy_replicates,
)
from hemabench.results.intervals import percentile_interval
from hemabench.results.metrics import over_repetitions
from hemabench.results.scoring import auc_scores, sample_replicates, score_predictions
from hemabench.submissions.recompute import recompute

LABELS = ["a", "b", "c"]
SKLEARN = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score,
           "weighted_f1": lambda t, p: f1_score(t, p, average="weighted"),
           "macro_f1": lambda t, p: f1_score(t, p, average="macro", zero_division=0)}


def _fixture(seed=0):
    rng = np.random.default_rng(seed)
    fold = np.repeat(["f0/s0", "f0/s1", "f1/s0", "f1/s1"], [30, 30, 18, 18])
    group = np.concatenate([np.tile(np.arange(10).repeat(3), 2), np.tile(np.arange(10, 16).repeat(3), 2)]).astype(str)
    true = rng.integers(0, 3, len(fold))
    pred = np.where(rng.random(len(fold)) < 0.7, true, rng.integers(0, 3, len(fold)))
    proba = rng.dirichlet(np.ones(3), len(fold))
    proba[np.arange(len(fold)), true] += 0.3 * rng.random(len(fold))
    proba = np.round(proba, 2)  # ties, as stored probabilities have
    return fold, group, true, pred, proba


def _naive(fold, rows_per_fold, fn):
    return np.mean([fn(rows) for rows in rows_per_fold])


def test_replicates_equal_sklearn_on_the_redrawn_samples():
    fold, group, true, pred, proba = _fixture()
    design = Design.build(fold, group)
    counts = next(design.unit_counts(seed=3, n_boot=5))
    weights = counts[:, design.unit]
    assert weights.shape == (5, len(fold))
    # runs of one rotation (f0/s0, f0/s1) share the redraw of their patients
    assert np.array_equal(weights[:, :30], weights[:, 30:60])
    heads = headline_replicates(design, true, pred, 3, counts, list(SKLEARN))
    patient = patient_accuracy_replicates(design, true == pred, group, counts)
    aucs = macro_auc_replicates(design, true, proba, 3, weights)
    for r in range(5):
        rows = [np.repeat(np.flatnonzero(fold == f), weights[r, fold == f].astype(int)) for f in design.folds]
        for name, fn in SKLEARN.items():
            assert heads[name][r] == pytest.approx(_naive(fold, rows, lambda i, fn=fn: fn(true[i], pred[i])))

        def pla(i):  # a patient drawn twice counts twice: the mean over drawn patients
            correct, size = true[i] == pred[i], {g: np.sum((group == g) & (fold == fold[i[0]])) for g in group[i]}
            draws = {g: np.sum(group[i] == g) / size[g] for g in size}
            return sum(draws[g] * correct[group[i] == g].mean() for g in draws) / sum(draws.values())

        assert patient[r] == pytest.approx(_naive(fold, rows, pla))
        for key, fn in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
            def macro(i, fn=fn):
                return np.mean([fn(true[i] == j, proba[i, j]) for j in range(3) if 0 < (true[i] == j).sum() < len(i)])

            assert aucs[key][r] == pytest.approx(_naive(fold, rows, macro))


def test_point_aucs_equal_sklearn_with_ties():
    _, _, true, _, proba = _fixture(2)
    scores = auc_scores(np.asarray(LABELS)[true], proba, LABELS)
    for j, label in enumerate(LABELS):
        assert scores[label]["roc_auc"] == pytest.approx(roc_auc_score(true == j, proba[:, j]), abs=1e-12)
        assert scores[label]["pr_auc"] == pytest.approx(average_precision_score(true == j, proba[:, j]), abs=1e-12)


def test_image_level_cell_counts_match_redrawn_samples_in_distribution():
    """Single-sample units are redrawn as multinomial cell counts: the same distribution as redrawing
    samples (same mean and spread of every headline metric), at the cost of the cells."""
    fold, _, true, pred, _ = _fixture(5)
    fold = np.char.partition(fold.astype(str), "/")[:, 0]  # two folds of single images
    design = Design.build(fold, np.arange(len(fold)))
    assert design.single_samples
    codes, chunks = cell_count_replicates(design, true * 3 + pred, seed=0, n_boot=4000)
    counts = np.concatenate(list(chunks))
    assert counts.sum(axis=2).tolist() == [[59.0, 35.0]] * 4000  # G - 1 of each fold's G samples
    by_cells = headline_from_cells(counts, codes, 3, list(SKLEARN))
    by_samples = {k: np.concatenate([v[k] for v in (headline_replicates(design, true, pred, 3, c, list(SKLEARN))
                                                    for c in design.unit_counts(1, 4000))]) for k in SKLEARN}
    for name in SKLEARN:
        assert by_cells[name].mean() == pytest.approx(by_samples[name].mean(), abs=0.004)
        assert by_cells[name].std() == pytest.approx(by_samples[name].std(), rel=0.06)


def _payload(fold, group, true, pred, proba=None):
    p = {"id": np.arange(len(fold)).astype(str), "fold": fold, "true": np.asarray(LABELS)[true],
         "pred": np.asarray(LABELS)[pred]}
    if group is not None:
        p["group"] = group
    if proba is not None:
        p["proba"] = proba
    return p


def test_every_interval_contains_its_mean_and_is_seeded():
    fold, group, true, pred, proba = _fixture(1)
    predictions = {"v": _payload(fold, group, true, pred, proba), "w": _payload(fold, None, true, pred)}
    scores = score_predictions(predictions, LABELS, "v", seed=0, n_boot=200)
    assert {"v/patient_accuracy", "v/roc_auc_macro", "v/pr_auc_macro", "w/macro_f1"} <= set(scores["metrics"])
    for name, m in scores["metrics"].items():
        assert m["ci95"][0] <= m["mean"] <= m["ci95"][1], name
    again = score_predictions(predictions, LABELS, "v", seed=0, n_boot=200)
    assert again["metrics"] == scores["metrics"]
    assert score_predictions(predictions, LABELS, "v", seed=1, n_boot=200)["metrics"] != scores["metrics"]


def test_repetitions_get_a_ci_of_the_mean_and_a_spread_of_single_runs():
    values = np.random.default_rng(0).normal(0.8, 0.05, 100)
    out = over_repetitions(values)
    assert out["spread95"] == pytest.approx(list(np.percentile(values, [2.5, 97.5])))
    assert out["ci95"] == pytest.approx(list(scipy_stats.t.interval(0.95, 99, np.mean(values), scipy_stats.sem(values))))
    ci_width, spread_width = np.diff(out["ci95"])[0], np.diff(out["spread95"])[0]
    # the CI of a mean of 100 runs is about 1/sqrt(100) as wide as the spread of single runs
    assert 0.05 < ci_width / spread_width < 0.2
    assert over_repetitions([0.99, 1.0, 1.0])["ci95"][1] == 1.0  # clipped to the proportion's range
    assert np.isnan(over_repetitions([0.5])["ci95"]).all()  # no interval from one run


def test_the_interval_of_a_mean_of_10_repetitions_covers_95_percent():
    """Where the stopping rule stops (10 repetitions), the t interval covers the true mean ~95% of the
    time; a percentile bootstrap of the mean (label-efficiency v4) covered ~89%."""
    rng = np.random.default_rng(7)
    sims = rng.normal(0.7, 0.02, (4000, 10))
    covered = [lo <= 0.7 <= hi for lo, hi in (over_repetitions(row)["ci95"] for row in sims)]
    assert 0.935 <= np.mean(covered) <= 0.965
    boot = sims[:, rng.integers(0, 10, (1000, 10))].mean(axis=2)  # the old interval, for contrast
    low, high = np.percentile(boot, [2.5, 97.5], axis=1)
    assert np.mean((low <= 0.7) & (0.7 <= high)) < 0.92


def _simulate(rng, patients: bool):
    """Five folds of unequal size; per sample correct with a per-class rate (true bAcc known);
    with ``patients``, a per-patient effect makes a patient's samples correlated."""
    rates = np.array([0.8, 0.65, 0.5])
    prior = np.array([0.5, 0.3, 0.2])
    true_acc, true_bacc = float(prior @ rates), float(rates.mean())
    sizes = [60, 90, 120, 150, 180]
    fold, true, correct, group = [], [], [], []
    for f, n in enumerate(sizes):
        if patients:
            n_pat = n // 6
            pat = rng.integers(0, n_pat, n)
            shift = rng.normal(0, 0.1, n_pat)[pat]  # patient effect, zero-mean
            group.append(np.char.add(f"f{f}p", pat.astype(str)))
        else:
            shift = 0.0
        y = rng.choice(3, n, p=prior)
        correct.append(rng.random(n) < np.clip(rates[y] + shift, 0, 1))
        true.append(y)
        fold.append(np.full(n, f"f{f}"))
    fold, true, correct = np.concatenate(fold), np.concatenate(true), np.concatenate(correct)
    pred = np.where(correct, true, (true + 1 + rng.integers(0, 2, len(true))) % 3)
    return fold, true, pred, (np.concatenate(group) if patients else None), true_acc, true_bacc


@pytest.mark.parametrize("patients", [False, True], ids=["image-level", "patient-level"])
def test_coverage_of_the_fold_mean_interval(patients):
    """1000 simulated test sets: the 95% intervals of accuracy and balanced accuracy cover the truth
    92-98% of the time, whether samples are independent or clustered by patient."""
    rng = np.random.default_rng(2026)
    hits = {"accuracy": 0, "balanced_accuracy": 0}
    n_sets = 1000
    for i in range(n_sets):
        fold, true, pred, group, true_acc, true_bacc = _simulate(rng, patients)
        p = {"id": np.arange(len(fold)).astype(str), "fold": fold, "true": np.asarray(LABELS)[true],
             "pred": np.asarray(LABELS)[pred], **({"group": group} if patients else {})}
        reps = sample_replicates(p, LABELS, seed=i, n_boot=300)  # what the scorer draws
        design = Design.build(fold, group)
        estimate = headline_replicates(design, true, pred, 3, np.ones((1, design.n_units)), list(hits))
        for k, truth in (("accuracy", true_acc), ("balanced_accuracy", true_bacc)):
            low, high = percentile_interval(reps[k], estimate[k][0])  # as the scorer does
            hits[k] += low <= truth <= high
    print(f"coverage over {n_sets} simulated test sets:", {k: n / n_sets for k, n in hits.items()})
    for k, n in hits.items():
        assert 0.92 <= n / n_sets <= 0.98, (k, n / n_sets)


REFERENCES = sorted((Path(__file__).resolve().parents[1] / "submissions").glob("*/results/*/*.json"))


def test_every_committed_interval_contains_its_mean():
    assert REFERENCES
    outside = [f"{path.relative_to(path.parents[4])}: {key} {m['mean']} {m['ci95']}"
               for path in REFERENCES for key, m in Result.load(path).metrics.items()
               if not m["ci95"][0] <= m["mean"] <= m["ci95"][1]]
    assert outside == []


@pytest.mark.parametrize("name", ["breakhis-subtype/synth-breakhis.json", "aml-mil/synth-aml.json"])
def test_rescored_references_keep_every_mean_inside_its_interval(name):
    """The results whose pooled-bootstrap intervals used to exclude their mean (macro F1 on tiny
    patient folds, average precision with tied probabilities), scored afresh."""
    paths = [p for p in REFERENCES if p.as_posix().endswith(name)]
    assert len(paths) == 2, f"expected the two baselines' {name}, found {paths}"  # an empty glob must not pass
    for path in paths:
        fresh = recompute(Result.load(path))["metrics"]
        assert all(m["ci95"][0] <= m["mean"] <= m["ci95"][1] for m in fresh.values())
