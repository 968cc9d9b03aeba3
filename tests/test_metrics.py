"""Every metric must equal scikit-learn's, including absent and never-predicted classes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from hemabench.results.metrics import aggregate, classification_metrics, metric_names

LABELS = ["blast", "eosinophil", "lymphocyte", "monocyte", "neutrophil", "platelet", "smudge"]


def sklearn_metrics(y_true, y_pred) -> dict[str, float]:
    """The reference numbers, as scikit-learn computes them without a labels argument."""
    with warnings.catch_warnings():  # balanced accuracy drops predicted-only classes, with a warning
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return {
            "accuracy": accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
            "weighted_f1": f1_score(y_true, y_pred, average="weighted", zero_division=0),
            "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
        }


@pytest.fixture
def predictions():
    """'platelet' is never predicted, 'monocyte' is predicted but absent from y_true,
    'smudge' is in the label list only."""
    rng = np.random.default_rng(0)
    true_classes, pred_classes = LABELS[:3] + LABELS[4:6], LABELS[:5]
    y_true = rng.choice(true_classes, size=500, p=[0.4, 0.1, 0.3, 0.15, 0.05])
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.choice(pred_classes, size=500))
    y_pred[y_pred == "platelet"] = "blast"
    return y_true, y_pred


def test_headline_metrics_equal_sklearn(predictions):
    y_true, y_pred = predictions
    assert "monocyte" not in y_true and "platelet" not in y_pred and "smudge" not in set(y_true) | set(y_pred)
    ours = classification_metrics(y_true, y_pred, LABELS)
    ref = sklearn_metrics(y_true, y_pred)
    for name in metric_names():
        assert isinstance(ours[name], float) and 0.0 <= ours[name] <= 1.0
        assert ours[name] == pytest.approx(ref[name], abs=1e-12), name


def test_per_class_and_confusion_equal_sklearn(predictions):
    y_true, y_pred = predictions
    ours = classification_metrics(y_true, y_pred, LABELS)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        row = ours["per_class"][label]
        assert row["sensitivity"] == pytest.approx(recall[i], abs=1e-12)
        assert row["precision"] == pytest.approx(precision[i], abs=1e-12)
        assert row["f1"] == pytest.approx(f1[i], abs=1e-12)
        assert row["support"] == support[i]
    assert ours["confusion_matrix"]["labels"] == LABELS
    assert ours["confusion_matrix"]["counts"] == confusion_matrix(y_true, y_pred, labels=LABELS).tolist()


def test_recomputable_from_stored_counts(predictions):
    """Rebuilding predictions from the stored confusion matrix gives the same numbers."""
    y_true, y_pred = predictions
    ours = classification_metrics(y_true, y_pred, LABELS)
    counts = np.array(ours["confusion_matrix"]["counts"])
    t, p = np.nonzero(counts)
    rebuilt = classification_metrics(np.repeat(t, counts[t, p]), np.repeat(p, counts[t, p]), LABELS)
    assert rebuilt == ours


def test_indices_and_names_are_equivalent(predictions):
    y_true, y_pred = predictions
    index = {label: i for i, label in enumerate(LABELS)}
    as_idx = classification_metrics([index[y] for y in y_true], [index[y] for y in y_pred], LABELS)
    assert as_idx == classification_metrics(y_true, y_pred, LABELS)


def test_perfect_and_bad_inputs():
    perfect = classification_metrics(["a", "b", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert all(perfect[name] == 1.0 for name in metric_names())
    assert perfect["per_class"]["c"] == {"sensitivity": 0.0, "precision": 0.0, "f1": 0.0, "support": 0}
    with pytest.raises(ValueError, match="not in the label list"):
        classification_metrics(["a", "x"], ["a", "a"], ["a", "b"])
    with pytest.raises(ValueError, match="class indices"):
        classification_metrics([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="samples"):
        classification_metrics(["a", "b"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        classification_metrics(["a"], ["a"], ["a", "a"])


def test_aggregate_uses_sample_std():
    out = aggregate([0.8, 0.9, 0.7])
    assert out["mean"] == pytest.approx(0.8)
    assert out["std"] == pytest.approx(np.std([0.8, 0.9, 0.7], ddof=1))
    assert out["values"] == [0.8, 0.9, 0.7]
    assert aggregate([0.5]) == {"mean": 0.5, "std": 0.0, "values": [0.5]}
    with pytest.raises(ValueError):
        aggregate([])
