"""The torch probe and kNN must reproduce scikit-learn's reference protocols."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from hemabench.protocols import TorchLogisticRegression, fit_probe, knn_predict, probe_C
from hemabench.protocols.probe import _objective
from hemabench.results.metrics import classification_metrics

LABELS = ["basophil", "blast", "eosinophil", "erythroblast", "lymphocyte", "monocyte", "neutrophil", "platelet"]
IMBALANCE = [0.30, 0.20, 0.15, 0.10, 0.10, 0.07, 0.05, 0.03]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def embeddings(class_sep: float, flip_y: float, n_classes: int = 8, n_features: int = 384, seed: int = 0):
    """Imbalanced embedding-like features: 2000 train and 1000 test rows, string labels."""
    weights = IMBALANCE if n_classes == 8 else None
    X, y = make_classification(
        n_samples=3000, n_features=n_features, n_informative=min(64, n_features // 2),
        n_redundant=min(32, n_features // 4), n_classes=n_classes,
        n_clusters_per_class=1, weights=weights, class_sep=class_sep, flip_y=flip_y, random_state=seed,
    )  # fmt: skip
    y = np.array(LABELS)[y]
    return X[:2000], y[:2000], X[2000:], y[2000:]


@pytest.fixture(scope="module", params=[(2.0, 0.01), (1.5, 0.02)], ids=["separable", "overlapping"])
def data(request):
    return embeddings(*request.param)


def test_probe_C_is_dinobloom_rule():
    assert probe_C(384, 8) == pytest.approx(30.72)
    assert probe_C(1536, 21) == pytest.approx(322.56)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_objective_is_sklearns(n_classes):
    """Loss and gradient equal LinearModelLoss with l2_reg_strength = 1/(C*n), as _logistic.py sets it."""
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    rng = np.random.default_rng(0)
    n, m, C = 300, 20, 3.0
    X, y = rng.normal(size=(n, m)), rng.integers(0, n_classes, size=n)
    binary = n_classes == 2
    k_out = 1 if binary else n_classes
    W = rng.normal(size=(m + 1, k_out))
    base = HalfBinomialLoss() if binary else HalfMultinomialLoss(n_classes=n_classes)
    ref = LinearModelLoss(base_loss=base, fit_intercept=True)
    coef = W[:, 0] if binary else W.T.ravel(order="F")  # sklearn's layout: (K, M+1), F-ravelled
    ref_loss, ref_grad = ref.loss_gradient(coef, X, y.astype(float), None, 1.0 / (C * n), 1)
    yt = torch.tensor(y, dtype=torch.float64 if binary else torch.long)
    loss, grad = _objective(torch.tensor(W), torch.tensor(X), yt, 1.0 / (C * n), binary)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-12)
    ref_grad = ref_grad[:, None] if binary else ref_grad.reshape((n_classes, m + 1), order="F").T
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-10, atol=1e-14)


def test_probe_agrees_with_sklearn(data):
    Xtr, ytr, Xte, yte = data
    C = probe_C(Xtr.shape[1], len(np.unique(ytr)))
    ref = LogisticRegression(C=C, max_iter=1000, solver="lbfgs").fit(Xtr, ytr)
    ours = TorchLogisticRegression(C=C, device="cpu").fit(Xtr, ytr)
    assert list(ours.classes_) == list(ref.classes_)
    pred_ref, pred_ours = ref.predict(Xte), ours.predict(Xte)
    assert (pred_ref == pred_ours).mean() >= 0.99
    m_ref, m_ours = classification_metrics(yte, pred_ref, LABELS), classification_metrics(yte, pred_ours, LABELS)
    for name in ("accuracy", "balanced_accuracy", "weighted_f1", "macro_f1"):
        assert abs(m_ref[name] - m_ours[name]) <= 0.005, name
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), atol=1e-3)
    # the same fit: scikit-learn's solution is (near) stationary for our objective
    W = torch.tensor(np.vstack([ref.coef_.T, ref.intercept_]))
    y_idx = torch.tensor(np.searchsorted(ref.classes_, ytr))
    _, grad = _objective(W, torch.tensor(Xtr), y_idx, 1.0 / (C * len(ytr)), False)
    assert grad.abs().max().item() <= 1e-4


def test_binary_probe_uses_binomial_loss():
    Xtr, ytr, Xte, _ = embeddings(1.0, 0.02, n_classes=2, n_features=128)
    C = probe_C(128, 2)
    ref = LogisticRegression(C=C, max_iter=1000).fit(Xtr, ytr)
    ours = TorchLogisticRegression(C=C, device="cpu").fit(Xtr, ytr)
    assert ours.coef_.shape == ref.coef_.shape == (1, 128)
    assert (ours.predict(Xte) == ref.predict(Xte)).mean() >= 0.99
    # ~250 iterations: rounding differences grow along the way, so probabilities agree less tightly
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), atol=0.02)


def test_float32_features_still_agree_closely():
    Xtr, ytr, Xte, _ = embeddings(2.0, 0.01, n_features=256)
    C = probe_C(256, 8)
    ref = LogisticRegression(C=C, max_iter=1000).fit(Xtr, ytr).predict(Xte)
    ours = TorchLogisticRegression(C=C, device="cpu", dtype=torch.float32).fit(Xtr, ytr).predict(Xte)
    assert (ours == ref).mean() >= 0.97


def test_fit_probe_both_solvers():
    Xtr, ytr, Xte, _ = embeddings(2.5, 0.0, n_features=64)
    results = {s: fit_probe(Xtr, ytr, Xte, solver=s, device="cpu") for s in ("torch", "sklearn")}
    for pred, proba in results.values():
        assert pred.shape == (len(Xte),) and set(pred) <= set(LABELS)
        assert proba.shape == (len(Xte), 8)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (results["torch"][0] == results["sklearn"][0]).mean() >= 0.99
    with pytest.raises(ValueError, match="unknown solver"):
        fit_probe(Xtr, ytr, Xte, solver="liblinear")


def test_probe_rejects_one_class_and_warns_without_convergence():
    X = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ValueError, match="at least 2 classes"):
        TorchLogisticRegression().fit(X, ["a"] * 50)
    y = np.array(["a", "b"])[np.arange(50) % 2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TorchLogisticRegression(C=100.0, max_iter=2, device="cpu").fit(X, y)
    assert any("without converging" in str(w.message) for w in caught)


def test_knn_agrees_with_sklearn(data):
    Xtr, ytr, Xte, _ = data
    # small batches and chunks exercise the running top-k merge
    ours = knn_predict(Xtr, ytr, Xte, ks=(1, 20), device="cpu", batch_size=256, train_chunk=300)
    for k in (1, 20):
        ref = KNeighborsClassifier(n_neighbors=k, weights="uniform", metric="euclidean").fit(Xtr, ytr).predict(Xte)
        assert (ours[k] == ref).mean() >= 0.995
        np.testing.assert_array_equal(ours[k], ref)  # float data: no distance ties, so exact


def test_knn_vote_ties_go_to_smallest_class():
    rng = np.random.default_rng(0)
    X, y, Xq = rng.normal(size=(600, 16)), rng.integers(0, 5, size=600), rng.normal(size=(400, 16))
    ours = knn_predict(X, y, Xq, ks=(2, 4), device="cpu", batch_size=64, train_chunk=3)  # chunk < k
    for k in (2, 4):
        np.testing.assert_array_equal(ours[k], KNeighborsClassifier(n_neighbors=k).fit(X, y).predict(Xq))
    assert knn_predict([[0.0], [1.0]], ["b", "a"], [[0.5]], ks=(2,), device="cpu")[2][0] == "a"


def test_knn_rejects_bad_k():
    with pytest.raises(ValueError, match="every k"):
        knn_predict(np.zeros((3, 2)), [0, 1, 2], np.zeros((1, 2)), ks=(4,), device="cpu")


@CUDA
def test_cuda_matches_cpu():
    Xtr, ytr, Xte, _ = embeddings(2.0, 0.01, n_features=128)
    cpu = fit_probe(Xtr, ytr, Xte, device="cpu")[0]
    gpu = fit_probe(Xtr, ytr, Xte, device="cuda")[0]
    assert (cpu == gpu).mean() >= 0.99
    cpu_knn = knn_predict(Xtr, ytr, Xte, device="cpu")
    gpu_knn = knn_predict(Xtr, ytr, Xte, device="cuda")
    for k in (1, 20):
        assert (cpu_knn[k] == gpu_knn[k]).mean() >= 0.995
