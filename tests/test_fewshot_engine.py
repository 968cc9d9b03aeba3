"""The fast few-shot engine against plain scikit-learn, the per-n stopping rule, and its validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PowerTransformer
from trees import skewed_blobs

from hemabench.errors import HemabenchError
from hemabench.protocols.fewshot import (
    fit_predict,
    fit_proba,
    make_classifier,
    support_permutations,
    support_set,
    sweep,
)
from hemabench.protocols.kernels import Linear, fast_proba, knn_proba
from hemabench.protocols.stopping import StoppingRule, confusion_balanced_accuracy, stopping_problems
from hemabench.results import Result
from hemabench.results.intervals import half_width


def blobs(n_per_class=60, classes=5, dim=24, seed=0, shift=1.0):
    return skewed_blobs(n_per_class, classes, dim, seed, shift)


def plain_sklearn(X, y, test_x, name, seed=0):
    """The reference pipeline as anyone would write it: an independent computation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(PowerTransformer(), PCA(), make_classifier(name, seed, n_train=len(X))).fit(X, y)
        return model.classes_[model.predict_proba(test_x).argmax(axis=1)]


def test_fast_engine_equals_plain_scikit_learn_on_many_support_sets():
    X, y = blobs()
    rows = np.arange(len(y))
    train, test = rows[rows % 3 != 0], rows[rows % 3 == 0]
    perms = support_permutations(train, y, repetitions=3, seed=4)
    same = total = 0
    scores = {}  # (classifier, n) -> [(ours, plain scikit-learn) balanced accuracy per repetition]
    for perm in perms:
        # n >= 5: at 1-2 cells per class, Platt scaling's 5-fold CV leaves near-uniform SVM probabilities whose
        # argmax turns on hemabench's Yeo-Johnson lambdas (within 1e-6 of scikit-learn's), engine or not;
        # there the fast engine equals hemabench's reference engine (next test)
        for n in (5, 15, 40):
            rows_n = support_set(perm, n)
            ours = fit_predict(X[rows_n], y[rows_n], X[test], seed=0, engine="fast")
            for name in ("svm", "lr", "knn"):
                ref = plain_sklearn(X[rows_n], y[rows_n], X[test], name)
                same, total = same + int((ours[name] == ref).sum()), total + len(test)
                scores.setdefault((name, n), []).append((balanced_accuracy_score(y[test], ours[name]),
                                                         balanced_accuracy_score(y[test], ref)))
    assert same / total >= 0.999
    worst = max(abs(np.mean([a for a, _ in v]) - np.mean([b for _, b in v])) for v in scores.values())
    assert 100 * worst <= 0.05


def test_fast_and_reference_engines_give_the_same_probabilities():
    X, y = blobs(n_per_class=50, dim=30, seed=2)
    train, test = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    fast = fit_proba(X[train], y[train], X[test], seed=3, engine="fast")
    ref = fit_proba(X[train], y[train], X[test], seed=3, engine="reference")
    for name in ("svm", "lr", "knn"):
        assert list(fast[name][0]) == list(ref[name][0])
        np.testing.assert_allclose(fast[name][1], ref[name][1], atol=1e-9, err_msg=name)
    with pytest.raises(ValueError, match="unknown engine"):
        fit_proba(X[train], y[train], X[test], engine="gpu")


def test_knn_weights_a_test_row_on_a_training_point_as_scikit_learn_does():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    z, y_idx = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    test = np.concatenate([z[:3], rng.normal(size=(20, 4))])  # three rows at distance 0 from training rows
    d2 = Linear().sq_distances(test, z, (test ** 2).sum(1), (z ** 2).sum(1))
    ours = knn_proba(d2, y_idx, 3, 3, "distance")
    theirs = KNeighborsClassifier(3, weights="distance").fit(z, y_idx).predict_proba(test)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    np.testing.assert_allclose(knn_proba(d2, y_idx, 3, 3, "uniform"),
                               KNeighborsClassifier(3).fit(z, y_idx).predict_proba(test), atol=1e-12)


def test_torch_products_on_cpu_equal_numpy_and_the_budget_refuses_in_one_line(monkeypatch):
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    z, zt, y = rng.normal(size=(60, 8)), rng.normal(size=(25, 8)), np.repeat(["a", "b", "c"], 20)
    fitted = {"svm": make_classifier("svm", 0).get_params() | {"kernel": "rbf", "gamma": "scale"},
              "knn": {"n_neighbors": 3, "weights": "distance"}}
    fitted["svm"] = {k: fitted["svm"][k] for k in ("kernel", "gamma", "C", "class_weight", "probability")}
    numpy_out = fast_proba(z, y, zt, fitted, seed=0, linear=Linear())
    torch_out = fast_proba(z, y, zt, fitted, seed=0, linear=Linear("cpu"))
    for name in fitted:
        np.testing.assert_allclose(torch_out[name][1], numpy_out[name][1], atol=1e-10)
    monkeypatch.setenv("HEMABENCH_KERNEL_GB", "0.0001")
    with pytest.raises(HemabenchError) as err:
        fast_proba(z, y, zt, fitted, seed=0)
    assert "support set of 60 cells" in str(err.value) and "HEMABENCH_KERNEL_GB" in str(err.value)
    assert "\n" not in str(err.value)


def test_stopping_rule_on_hand_made_values():
    rule = StoppingRule(maximum=30, minimum=10, block=5, precision=0.01)
    tight, loose = [0.5 + 0.001 * (i % 3) for i in range(30)], [0.5 + 0.2 * (i % 2) for i in range(30)]
    assert rule.stop_at([tight]) == 10 and rule.stop_at([loose]) == 30 and rule.stop_at([tight, loose]) == 30
    assert rule.stop_at([tight[:9]]) is None and rule.stop_at([loose[:25]]) is None
    assert half_width([1.0, 3.0]) == pytest.approx(12.7062047 * np.std([1, 3], ddof=1) / np.sqrt(2))
    fixed = StoppingRule.from_params({"repetitions": 7})  # a result from before the rule: fixed
    assert (fixed.minimum, fixed.maximum, fixed.precision) == (7, 7, None) and fixed.stop_at([tight]) == 7
    capped = StoppingRule.from_params({"repetitions": 5, "precision": 0.005, "min_repetitions": 10})
    assert capped.minimum == 5 and capped.stop_at([loose]) == 5  # the demo's fixed count
    assert confusion_balanced_accuracy([[3, 1], [0, 0]]) == 0.75  # a class without test cells is left out


def test_adaptive_sweep_is_a_prefix_of_the_fixed_one_and_stops_where_the_rule_says():
    X, y = blobs(n_per_class=40, classes=4, dim=10, seed=5, shift=0.8)
    rows = np.arange(len(y))
    train, test = rows[rows % 3 != 0], rows[rows % 3 == 0]
    perms = support_permutations(train, y, repetitions=12, seed=0)
    labels = sorted(set(y))
    rule = StoppingRule(maximum=12, minimum=4, block=4, precision=0.03)
    grid = (1, 10, 30)
    adaptive = sweep(X, y, perms, X[test], y[test], labels, grid, ("svm", "knn"), n_jobs=1, rule=rule)
    fixed = sweep(X, y, perms, X[test], y[test], labels, grid, ("svm", "knn"), n_jobs=1)
    counts = adaptive["repetitions"]
    assert counts[1] == 12 and counts[30] == 4  # noisy n = 1 runs to the cap; n = 30 (every cell) stops at once
    for (clf, n), cms in adaptive["confusions"].items():
        assert len(cms) == counts[n]
        np.testing.assert_array_equal(np.asarray(cms), np.asarray(fixed["confusions"][(clf, n)][:counts[n]]))
    for n in grid:
        values = [[confusion_balanced_accuracy(c) for c in adaptive["confusions"][(clf, n)]] for clf in ("svm", "knn")]
        assert rule.stop_at(values) == counts[n]
    groups = {str(n): {"repetitions": counts[n], "variants": [f"{c}/n={n}" for c in ("svm", "knn")]} for n in grid}
    variants = {f"{c}/n={n}": {"confusions": cms} for (c, n), cms in adaptive["confusions"].items()}
    assert stopping_problems(rule, groups, variants) == []
    variants["svm/n=1"] = {"confusions": variants["svm/n=1"]["confusions"][:8]}  # repetitions dropped
    groups["10"]["repetitions"] += 4  # a count that the rule does not give
    problems = dict(stopping_problems(rule, groups, variants))
    assert set(problems) == {'extra.stopping.groups["1"]', 'extra.stopping.groups["10"]'}
    assert "the rule" in problems['extra.stopping.groups["1"]']


def test_coverage_simulation_small():
    """The t-interval of the mean at the rule's stopping point covers the truth about 95% of the time."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "stopping_coverage.py"
    spec = importlib.util.spec_from_file_location("stopping_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rule = StoppingRule(maximum=100, minimum=10, block=10, precision=0.005)
    for spread in (0.008, 0.02):  # stops early (~10-20 repetitions) / later (~60-70)
        out = module.coverage(rule, mean=0.7, spread=spread, sims=600, seed=1)
        assert 0.92 <= out["coverage_t"] <= 0.98, out
        assert rule.minimum <= out["mean_repetitions"] <= rule.maximum


def test_validate_rederives_the_stopping_points_from_stored_confusions():
    from hemabench.submissions.recompute import stopping_result_problems

    labels = ["a", "b"]
    rng = np.random.default_rng(0)
    tight = [np.array([[20, 0], [0, 20]]) + np.array([[0, 0], [int(i % 2), -int(i % 2)]]) for i in range(30)]
    loose = [np.array([[20 - k, k], [0, 20]]) for k in rng.integers(0, 15, 30)]
    params = {"repetitions": 30, "precision": 0.02, "min_repetitions": 10, "repetition_block": 10}
    rule = StoppingRule.from_params(params)
    predictions = {"svm/n=5": {"fold": [f"rep{r:03d}" for r in range(30)], "confusions": [c.tolist() for c in loose]},
                   "svm/n=50": {"fold": [f"rep{r:03d}" for r in range(10)], "confusions": [c.tolist() for c in tight[:10]]}}
    stopping = {"rule": rule.describe(), "groups": {"5": {"repetitions": 30, "variants": ["svm/n=5"]},
                                                    "50": {"repetitions": 10, "variants": ["svm/n=50"]}}}
    result = {"task": "label-efficiency", "task_version": 3, "dataset": "synth-bm", "encoder": {"name": "x"},
              "main_metric": "m", "metrics": {"m": {}}, "task_metadata": {"params": params},
              "labels": labels, "predictions": predictions, "extra": {"stopping": stopping}}
    assert stopping_result_problems(Result.from_dict(result), "r.json") == []
    # stopped early at a noisy n: the stored confusions say the rule needs more
    forged = {**predictions, "svm/n=5": {"fold": predictions["svm/n=5"]["fold"][:10],
                                         "confusions": predictions["svm/n=5"]["confusions"][:10]}}
    stopping_forged = {**stopping, "groups": {**stopping["groups"], "5": {"repetitions": 10, "variants": ["svm/n=5"]}}}
    forged_result = Result.from_dict({**result, "predictions": forged, "extra": {"stopping": stopping_forged}})
    (problem,) = stopping_result_problems(forged_result, "r.json")
    assert problem.field == 'extra.stopping.groups["5"]' and "stops at None" in problem.message
    # a rule other than the parameters', and a missing record
    other = {**stopping, "rule": {**rule.describe(), "precision": 0.5}}
    (problem,) = stopping_result_problems(Result.from_dict({**result, "extra": {"stopping": other}}), "r.json")
    assert problem.field == "extra.stopping.rule"
    (problem,) = stopping_result_problems(Result.from_dict({**result, "extra": {}}), "r.json")
    assert problem.field == "extra.stopping" and "is missing" in problem.message
    # results from before the rule (no precision in their parameters) are not checked
    fixed = Result.from_dict({**result, "task_metadata": {"params": {"repetitions": 30}}, "extra": {}})
    assert stopping_result_problems(fixed, "r.json") == []


def test_ranking_pairs_the_repetitions_both_encoders_ran():
    from hemabench.leaderboard.ranking import _value_bootstrap

    a, b = [0.8, 0.7, 0.9, 0.6, 0.75], [0.7, 0.72, 0.8]
    observed, diffs, n, unit = _value_bootstrap(a, b, seed=0, n_boot=200)
    assert n == 3 and unit == "repetitions" and observed == pytest.approx(np.mean([0.1, -0.02, 0.1]))
    assert _value_bootstrap(a, [0.7], seed=0, n_boot=10) is None
