"""Label efficiency and bone-marrow-to-blood transfer: sampler, transform, mapping, curves."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PowerTransformer
from trees import skewed_blobs

from hemabench.protocols.fewshot import (
    fit_predict,
    fit_proba,
    make_classifier,
    normalised_auc,
    support_hash,
    support_permutations,
    support_set,
    sweep,
)
from hemabench.protocols.power import ExactPowerTransformer
from hemabench.results import Result
from hemabench.tasks.transfer import Mapping, load_mapping, superclass_metrics


def blobs(n_per_class=40, classes=4, dim=12, seed=0, shift=1.5):
    return skewed_blobs(n_per_class, classes, dim, seed, shift)


@pytest.mark.parametrize("n", [1, 3, 80])
def test_yeo_johnson_equals_scikit_learn_bit_for_bit(n):
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=(n, 6)), rng.gamma(2, 2, (n, 6)) - 1, -rng.gamma(1, 3, (n, 2)),
                        np.zeros((n, 1))], axis=1)
    X[:, 0] = 2.0  # constant column
    ref, ours = PowerTransformer().fit(X), ExactPowerTransformer().fit(X)
    assert np.array_equal(ours.lambdas_, ref.lambdas_)
    test = rng.normal(size=(20, X.shape[1]))
    assert np.array_equal(ours.transform(test), ref.transform(test))
    assert np.array_equal(ExactPowerTransformer().fit_transform(X), PowerTransformer().fit_transform(X))


def test_sampler_is_seeded_nested_capped_and_never_touches_test_rows():
    labels = np.array(["a"] * 30 + ["b"] * 7 + ["c"] * 50)
    rows = np.arange(len(labels))
    train, test = rows[rows % 4 != 0], rows[rows % 4 == 0]
    perms = support_permutations(train, labels, repetitions=5, seed=11)
    again = support_permutations(train, labels, repetitions=5, seed=11)
    other = support_permutations(train, labels, repetitions=5, seed=12)
    paths = np.array([f"img{i}.png" for i in rows])
    assert support_hash(perms, paths) == support_hash(again, paths) != support_hash(other, paths)
    for perm in perms:
        small, large = support_set(perm, 3), support_set(perm, 10)
        assert set(small) <= set(large) and not set(large) & set(test)
        counts = {c: int((labels[large] == c).sum()) for c in "abc"}
        assert counts == {"a": 10, "b": 5, "c": 10}  # class b has only 5 training items: uses all it has


def test_shared_transform_pipeline_agrees_with_scikit_learn_pipelines():
    X, y = blobs()
    rng = np.random.default_rng(1)
    train = rng.permutation(len(y))[:100]
    test = np.setdiff1d(np.arange(len(y)), train)
    ours = fit_predict(X[train], y[train], X[test], seed=0)
    for name in ("svm", "lr", "knn"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = make_pipeline(PowerTransformer(), PCA(), make_classifier(name, 0)).fit(X[train], y[train])
            proba = ref.predict_proba(X[test])
        reference = ref.classes_[proba.argmax(axis=1)]
        assert (ours[name] == reference).mean() >= 0.99, name
        if name == "lr":  # the same features reach the same scikit-learn classifier: identical numbers
            assert np.array_equal(fit_proba(X[train], y[train], X[test], ("lr",), seed=0)["lr"][1], proba)


def test_curves_rise_with_n_and_saturated_sets_are_fitted_once():
    X, y = blobs(n_per_class=30, shift=0.9)
    rows = np.arange(len(y))
    train, test = rows[rows % 3 != 0], rows[rows % 3 == 0]
    perms = support_permutations(train, y, repetitions=6, seed=0)
    grid = (1, 5, 20, 50, 100)
    out = sweep(X, y, perms, X[test], y[test], sorted(set(y)), grid, ("svm",), seed=0, n_jobs=1)
    from hemabench.tasks.label_efficiency import balanced_accuracy_of

    mean = {n: np.mean([balanced_accuracy_of(c, sorted(set(y))) for c in out["confusions"][("svm", n)]]) for n in grid}
    assert mean[1] < mean[5] < mean[20] and mean[20] > 0.5
    # each class has 20 training items: n = 20, 50 and 100 use them all, one fit serves every repetition
    assert out["fits"] == 6 * 2 + 1
    assert normalised_auc([1, 2, 4], [1.0, 1.0, 1.0]) == pytest.approx(1.0)


def test_mapping_rules_on_hand_made_predictions():
    mapping = load_mapping()
    acevedo = Mapping.for_target(mapping, "acevedo")
    assert list(acevedo.map_predictions(np.array(["PMO", "MYB", "MMZ", "NGB", "LYT"]))) == ["MYC", "MYC", "MYC", "NGS", "LYT"]
    bm_classes = {"ABE", "ART", "BAS", "BLA", "EBO", "EOS", "LYT", "MMZ", "MON", "MYB", "NGB", "NGS", "PMO", "PLM"}
    assert acevedo.fit_classes(bm_classes) == ["BAS", "EBO", "EOS", "LYT", "MMZ", "MON", "MYB", "NGB", "NGS", "PMO"]
    matek = Mapping.for_target(mapping, "matek-blood")
    assert "BLA" not in matek.fit_classes(bm_classes) and "MYO" not in matek.scored  # BLA is not mapped to MYO
    assert len(matek.scored) == 11 and len(acevedo.scored) == 7 and len(Mapping.for_target(mapping, "raabin").scored) == 5
    # superclass MYC = PMO | MYB | MMZ: a PMO predicted as MYB is wrong as a class but right as a superclass
    labels = list(matek.scored)
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    pmo, myb, mmz, lyt = (labels.index(c) for c in ("PMO", "MYB", "MMZ", "LYT"))
    confusion[pmo, myb] = 3
    confusion[pmo, pmo] = 1
    confusion[mmz, lyt] = 4
    metrics = superclass_metrics({"direct": {"confusions": [confusion]}}, labels, matek.superclasses)
    assert metrics["direct/sensitivity_MYC"]["mean"] == pytest.approx(4 / 8)


def test_scored_rows_drop_unmapped_classes_and_unspecified_fine_labels():
    import pandas as pd

    records = pd.DataFrame({"label": ["MYC", "MYC", "PLA", "NGS"], "fine_label": ["MY", "IG", "PLATELET", "SNE"]})
    acevedo = Mapping.for_target(load_mapping(), "acevedo")
    assert list(acevedo.scored_rows(records, np.arange(4), "label")) == [0, 3]


@pytest.mark.slow
def test_label_efficiency_and_transfer_on_the_demo_and_an_acevedo_fixture(tmp_path, cli):
    from test_run import acevedo_tree

    acevedo_tree(tmp_path / "data", per_class=14)
    code, out, _ = cli("run", "--encoder", "handcrafted", "--task", "label-efficiency", "--dataset", "acevedo",
                       "--data-root", tmp_path / "data", "--out", tmp_path / "r", "--no-progress")
    assert code == 0
    result = json.loads((tmp_path / "r" / "handcrafted" / "label-efficiency" / "acevedo.json").read_text())
    assert result["split"]["name"] == "holdout-70-30" and len(result["extra"]["support_hash"]) == 64
    runs = result["extra"]["stopping"]["groups"]["5"]["repetitions"]  # the stopping rule's count at n = 5
    assert 10 <= runs <= 100 and len(result["metrics"]["svm/n=5/balanced_accuracy"]["values"]) == runs
    assert result["extra"]["effective_n"]["2000"]["BAS"] == result["extra"]["effective_n"]["25"]["BAS"]
    assert {"svm/balanced_accuracy_auc", "lr/balanced_accuracy_auc", "knn/balanced_accuracy_auc"} <= set(result["metrics"])
    sem = result["extra"]["repetition_sem"]["svm/n=5"]
    score = result["metrics"]["svm/n=5/balanced_accuracy"]
    assert sem["repetitions"] == runs and sem["balanced_accuracy"] == pytest.approx(score["std"] / np.sqrt(runs))
    code, out, _ = cli("run", "--suite", "demo", "--encoder", "handcrafted", "--task", "bm-to-blood",
                       "--out", tmp_path / "r", "--no-progress")
    assert code == 0
    transfer = json.loads((tmp_path / "r" / "handcrafted" / "bm-to-blood" / "synth-blood.json").read_text())
    assert transfer["source_split"]["dataset"] == "synth-bm" and transfer["task_metadata"]["params"]["repetitions"] == 10
    assert "direct/sensitivity_MYC" in transfer["metrics"] and "adapt/n=5/balanced_accuracy" in transfer["metrics"]
    assert transfer["labels"] == ["BAS", "EOS", "LYT", "MON", "MYB", "NGB", "NGS", "PMO"]


def test_repetition_sem_is_the_standard_error_over_repetitions_and_a_forged_one_is_caught():
    from hemabench.results import predictions_payload
    from hemabench.submissions.recompute import derived_extra_problems
    from hemabench.tasks import TASKS
    from hemabench.tasks.base import Predictions

    labels = ["a", "b"]
    confusions = np.array([[[3, 1], [0, 4]], [[2, 2], [1, 3]], [[4, 0], [2, 2]]])
    variants = {"svm/n=5": {"fold": np.array(["rep000", "rep001", "rep002"]), "confusions": confusions}}
    balanced = [(3 / 4 + 4 / 4) / 2, (2 / 4 + 3 / 4) / 2, (4 / 4 + 2 / 4) / 2]  # mean recall per repetition
    task = TASKS.get("label-efficiency")
    sem = task.derived(variants, labels, {})["repetition_sem"]  # what evaluate stores
    assert sem == {"svm/n=5": {"balanced_accuracy": pytest.approx(np.std(balanced, ddof=1) / np.sqrt(3)),
                               "repetitions": 3}}

    def result(stored: dict) -> dict:  # the fields validate reads (a real run: the test above)
        return {"task": task.name, "task_version": task.version, "dataset": "synth-bm", "encoder": {},
                "main_metric": "m", "metrics": {"m": {}}, "labels": labels, "task_metadata": task.metadata(),
                "predictions": predictions_payload(Predictions(variants)), "extra": {"repetition_sem": stored}}

    assert derived_extra_problems(Result.from_dict(result(sem)), "r.json") == []
    forged = {"svm/n=5": {"balanced_accuracy": sem["svm/n=5"]["balanced_accuracy"] / 2, "repetitions": 3}}
    (problem,) = derived_extra_problems(Result.from_dict(result(forged)), "r.json")
    assert problem.field == 'extra["repetition_sem"]["svm/n=5"]["balanced_accuracy"]'
    assert problem.message.startswith("stored 0.") and "but the predictions give 0." in problem.message
