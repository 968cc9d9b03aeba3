"""Scoring stored predictions: confusion-only variants, patient-level accuracy, AUCs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from hemabench.results.scoring import expand_confusion, patient_accuracy, score_predictions

LABELS = ["a", "b", "c"]


def test_expand_confusion_reproduces_the_matrix():
    counts = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 5]])
    true, pred = expand_confusion(counts, LABELS)
    assert confusion_matrix(true, pred, labels=LABELS).tolist() == counts.tolist()


def test_patient_accuracy_by_hand():
    # patient P1: 2 of 3 right; P2: 1 of 1 right; P3: 0 of 2 right -> (2/3 + 1 + 0) / 3
    true = ["a", "a", "a", "b", "c", "c"]
    pred = ["a", "a", "b", "b", "a", "b"]
    group = ["P1", "P1", "P1", "P2", "P3", "P3"]
    assert patient_accuracy(true, pred, group) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert patient_accuracy(true, pred, group) != pytest.approx(3 / 6)  # differs from image-level accuracy


def test_confusion_only_variant_mean_over_repetitions():
    rng = np.random.default_rng(0)
    confusions = rng.integers(0, 9, (20, 3, 3))
    scores = score_predictions({"svm": {"fold": [f"rep{i}" for i in range(20)], "confusions": confusions.tolist()}},
                               LABELS, "svm")
    expected = [balanced_accuracy_score(*expand_confusion(c, LABELS)) for c in confusions]
    metric = scores["metrics"]["svm/balanced_accuracy"]
    assert metric["values"] == pytest.approx(expected) and metric["mean"] == pytest.approx(np.mean(expected))
    assert metric["spread95"] == pytest.approx([np.percentile(expected, 2.5), np.percentile(expected, 97.5)])
    t_interval = scipy_stats.t.interval(0.95, 19, np.mean(expected), scipy_stats.sem(expected))
    assert metric["ci95"] == pytest.approx(list(t_interval))  # the mean's interval: Student's t over repetitions
    assert scores["confusion_matrix"]["counts"] == confusions.sum(axis=0).tolist()


def test_probabilities_give_auc_per_class_and_macro():
    rng = np.random.default_rng(1)
    true = rng.choice(LABELS, 90)
    proba = rng.dirichlet([1, 1, 1], 90) + np.eye(3)[[LABELS.index(t) for t in true]] * 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = np.asarray(LABELS)[proba.argmax(axis=1)]
    p = {"id": [str(i) for i in range(90)], "fold": ["f0"] * 45 + ["f1"] * 45, "true": list(true), "pred": list(pred),
         "proba": proba.tolist(), "group": [f"P{i // 3}" for i in range(90)]}
    scores = score_predictions({"mil": p}, LABELS, "mil")
    for j, label in enumerate(LABELS):
        assert scores["per_class"][label]["roc_auc"] == pytest.approx(roc_auc_score(true == label, proba[:, j]))
    fold_macro = [roc_auc_score(true[s], proba[s], multi_class="ovr", labels=LABELS) for s in (slice(0, 45), slice(45, 90))]
    assert scores["metrics"]["mil/roc_auc_macro"]["values"] == pytest.approx(fold_macro)
    assert "mil/patient_accuracy" in scores["metrics"] and scores["folds"] == ["f0", "f1"]
