"""The fast, exact engine of the few-shot pipeline: every kernel and distance by BLAS.

scikit-learn's ``SVC(kernel="rbf")`` spends most of a fit in libsvm evaluating the RBF kernel
one pair of rows at a time; its predictions do the same against every support vector. Here
the same kernel, exp(-gamma ||a - b||^2) with scikit-learn's ``gamma`` rule, is computed as one
float64 matrix product (NumPy, or torch on CUDA when a GPU is present) and handed to the same
libsvm through ``SVC(kernel="precomputed")``: the optimisation, Platt scaling and its seeded
internal cross-validation are libsvm's own, so only the last bits of the kernel values differ.
Test kernels are evaluated against the support vectors only (libsvm reads no other column).
kNN takes its neighbours from the same test-to-train squared distances (computed once per
support set for both), weighted as scikit-learn weights them; logistic regression is
scikit-learn's, on the same PCA scores.

Memory: the training Gram matrix (8 m^2 bytes for m support cells: 6.2 GiB at Matek BM's
28,833 cells at n = 2,000) plus test chunks of at most ``CHUNK_BYTES`` per array, two arrays.
A fit whose Gram matrix and chunks would exceed the budget (``HEMABENCH_KERNEL_GB``, default
8 GiB per worker) is refused with one line before anything is allocated.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from sklearn.svm import SVC

from hemabench.errors import HemabenchError

CHUNK_BYTES = 256 * 2**20  # per test-chunk array (distances, kernel)
DEFAULT_BUDGET_GB = 8.0


def budget_bytes() -> int:
    """The per-fit memory budget: ``HEMABENCH_KERNEL_GB`` GiB (default 8)."""
    value = os.environ.get("HEMABENCH_KERNEL_GB", "")
    try:
        gb = float(value) if value else DEFAULT_BUDGET_GB
    except ValueError:
        raise HemabenchError(f"HEMABENCH_KERNEL_GB must be a number of GiB, got {value!r}") from None
    return int(gb * 2**30)


def memory_needed(m: int) -> int:
    """Bytes one fit of ``m`` support cells holds at its peak: the Gram matrix and two test chunks."""
    return 8 * m * m + 2 * CHUNK_BYTES


def check_budget(m: int) -> None:
    need, budget = memory_needed(m), budget_bytes()
    if need > budget:
        raise HemabenchError(f"the fast few-shot engine needs {need / 2**30:.1f} GiB for a support set of {m} cells "
                             f"(its {m} x {m} float64 kernel), above the {budget / 2**30:.1f} GiB budget: raise "
                             f"HEMABENCH_KERNEL_GB or run fewer workers (HEMABENCH_JOBS)")


class Linear:
    """Matrix products in float64: NumPy's BLAS, or torch on ``device`` (a GPU)."""

    def __init__(self, device: str | None = None):
        self.device = device

    def products(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a @ b.T as a float64 NumPy array."""
        if self.device is None:
            return a @ b.T
        import torch

        ta = torch.as_tensor(a, dtype=torch.float64, device=self.device)
        tb = ta if b is a else torch.as_tensor(b, dtype=torch.float64, device=self.device)
        return (ta @ tb.T).cpu().numpy()

    def sq_distances(self, a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
        """||a_i - b_j||^2 = ||a_i||^2 - 2 a_i.b_j + ||b_j||^2, clipped at 0 (scikit-learn's expansion)."""
        d = self.products(a, b)
        d *= -2.0
        d += a_sq[:, None]
        d += b_sq[None, :]
        return np.maximum(d, 0.0, out=d)


def default_linear() -> Linear:
    """torch on CUDA when a GPU is present (``HEMABENCH_ENGINE_DEVICE=cpu`` keeps NumPy), else NumPy."""
    if os.environ.get("HEMABENCH_ENGINE_DEVICE", "auto") != "cpu":
        try:
            import torch

            if torch.cuda.is_available():
                return Linear("cuda")
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
    return Linear()


def engine_record(engine: str) -> dict:
    """What ran the fits, for a result's ``extra.engine``: the engine and where its products ran."""
    return {"name": engine, "device": (default_linear().device or "numpy") if engine == "fast" else "scikit-learn"}


def rbf_gamma(z: np.ndarray, gamma) -> float:
    """scikit-learn's gamma: "scale" = 1 / (n_features * X.var()) (1.0 if X.var() is 0), "auto" = 1 / n_features."""
    if gamma == "scale":
        var = z.var()
        return 1.0 / (z.shape[1] * var) if var != 0 else 1.0
    if gamma == "auto":
        return 1.0 / z.shape[1]
    return float(gamma)


def is_exact(name: str, kwargs: dict) -> bool:
    """Whether classifier ``name`` with these keywords has a BLAS path here (others run as scikit-learn's)."""
    if name == "svm":
        return kwargs.get("kernel", "rbf") == "rbf" and (kwargs.get("gamma", "scale") in ("scale", "auto")
                                                         or isinstance(kwargs.get("gamma"), (int, float)))
    if name == "knn":
        metric_ok = kwargs.get("metric", "minkowski") in ("minkowski", "euclidean") and kwargs.get("p", 2) == 2
        return metric_ok and kwargs.get("weights", "uniform") in ("uniform", "distance")
    return False


def knn_proba(d2: np.ndarray, y_idx: np.ndarray, n_classes: int, k: int, weights: str,
              overwrite: bool = False) -> np.ndarray:
    """KNeighborsClassifier.predict_proba from squared distances (rows: test, columns: train):
    the k nearest (ties in distance: the lower training index), weights 1/distance (a test row
    at distance 0 from some training rows gives those weight 1, the rest 0) or uniform. k passes
    of argmin (vectorised; faster than a partial sort for the protocol's k = 3); ``overwrite``
    lets them mark the neighbours found in ``d2`` itself instead of a copy."""
    work = d2 if overwrite else d2.copy()
    rows = np.arange(len(d2))
    nearest = np.empty((len(d2), k), dtype=np.int64)
    dist = np.empty((len(d2), k))
    for j in range(k):
        nearest[:, j] = np.argmin(work, axis=1)
        dist[:, j] = work[rows, nearest[:, j]]
        work[rows, nearest[:, j]] = np.inf
    if weights == "distance":
        with np.errstate(divide="ignore"):
            w = 1.0 / np.sqrt(dist)
        inf_mask = np.isinf(w)
        inf_row = inf_mask.any(axis=1)
        w[inf_row] = inf_mask[inf_row]
    else:
        w = np.ones(nearest.shape)
    proba = np.zeros((len(d2), n_classes))
    np.add.at(proba, (np.broadcast_to(rows[:, None], nearest.shape), y_idx[nearest]), w)
    norm = proba.sum(axis=1, keepdims=True)
    norm[norm == 0.0] = 1.0
    return proba / norm


def fast_proba(z_train: np.ndarray, train_y: np.ndarray, z_test: np.ndarray, fitted: dict[str, dict], seed: int,
               linear: Linear | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Classifier -> (classes, test probabilities) for ``svm`` and ``knn`` in ``fitted`` (their
    scikit-learn keywords), sharing the squared distances between them."""
    linear = linear or default_linear()
    m = len(z_train)
    check_budget(m)
    classes, y_idx = np.unique(train_y, return_inverse=True)
    sq_train, sq_test = np.einsum("ij,ij->i", z_train, z_train), np.einsum("ij,ij->i", z_test, z_test)
    out, svc, full = {}, None, "knn" in fitted  # kNN needs every column; the SVM only its support vectors
    columns = np.arange(m)
    if "svm" in fitted:
        kwargs = {k: v for k, v in fitted["svm"].items() if k not in ("kernel", "gamma", "degree", "coef0")}
        gamma = rbf_gamma(z_train, fitted["svm"].get("gamma", "scale"))
        gram = linear.sq_distances(z_train, z_train, sq_train, sq_train)
        gram *= -gamma
        np.exp(gram, out=gram)
        with warnings.catch_warnings():  # SVC(probability=True) is the reference; deprecated in scikit-learn 1.9
            warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)
            svc = SVC(kernel="precomputed", **{**kwargs, "random_state": seed}).fit(gram, train_y)
        del gram
        columns = columns if full else svc.support_
        svm_parts = []
    if "knn" in fitted:
        k = min(fitted["knn"].get("n_neighbors", 5), m)
        knn_parts = []
    rows_per_chunk = max(1, CHUNK_BYTES // (8 * m))
    for start in range(0, len(z_test), rows_per_chunk):
        zt = z_test[start:start + rows_per_chunk]
        d2 = linear.sq_distances(zt, z_train[columns], sq_test[start:start + len(zt)], sq_train[columns])
        if svc is not None:
            sv = svc.support_ if full else slice(None)
            kernel = np.zeros((len(zt), m))
            kernel[:, svc.support_] = np.exp(-gamma * d2[:, sv])
            svm_parts.append(svc.predict_proba(kernel))
            del kernel
        if "knn" in fitted:  # last: it marks the neighbours it finds in d2
            knn_parts.append(knn_proba(d2, y_idx, len(classes), k, fitted["knn"].get("weights", "uniform"), True))
    if svc is not None:
        out["svm"] = (svc.classes_, np.concatenate(svm_parts) if svm_parts else np.zeros((0, len(classes))))
    if "knn" in fitted:
        out["knn"] = (classes, np.concatenate(knn_parts) if knn_parts else np.zeros((0, len(classes))))
    return out
