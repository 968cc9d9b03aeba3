"""k-nearest-neighbour protocol on frozen embeddings, batched on torch.

Matches ``sklearn.neighbors.KNeighborsClassifier(n_neighbors=k, weights="uniform",
metric="euclidean")``: the k training points with the smallest Euclidean distance
vote, and a tied vote goes to the smallest class index (``classes_`` are the sorted
unique labels; scikit-learn's brute-force ``predict`` takes ``argmax`` of the vote
fractions, its tree-based one ``scipy.stats.mode``: both pick the smallest class).

Distances use ||a||^2 - 2 a.b + ||b||^2 (one GEMM per block), as scikit-learn's brute
force does, in float64 by default.  Test rows go in batches of ``batch_size`` and
training rows in chunks of ``train_chunk``, keeping a running top-k, so memory stays
about ``batch_size * (train_chunk + k)`` distances even for 170k x 1536 features.

Not matched: which neighbour wins a tie in *distance* at the k-th place (duplicated
training points); that depends on each implementation's partial sort.  On float
embeddings such ties are rare; on data without them the predictions are identical.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from hemabench.compute.device import resolve_device
from hemabench.protocols.probe import to_tensor


def _nearest(q: torch.Tensor, train: torch.Tensor, train_sq: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Indices (len(q), k) of the k nearest training rows, nearest first (running top-k over chunks)."""
    q_sq = (q * q).sum(dim=1, keepdim=True)
    best_d = best_i = None
    for start in range(0, train.shape[0], chunk):
        block = train[start : start + chunk]
        d = torch.addmm(q_sq + train_sq[start : start + chunk], q, block.T, alpha=-2.0)
        kept = 0 if best_d is None else best_d.shape[1]
        if kept:
            d = torch.cat([best_d, d], dim=1)
        best_d, pos = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False, sorted=True)
        fresh = pos - kept + start  # column -> training row, for columns of this block
        best_i = fresh if not kept else torch.where(pos < kept, best_i.gather(1, pos.clamp(max=kept - 1)), fresh)
    return best_i


def _vote(neighbour_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Majority class per row; ties go to the smallest class index."""
    counts = torch.zeros(neighbour_labels.shape[0], n_classes, dtype=torch.long, device=neighbour_labels.device)
    counts.scatter_add_(1, neighbour_labels, torch.ones_like(neighbour_labels))
    # counts*K + (K-1-class) has a unique maximum: the largest count, then the smallest class
    tiebreak = torch.arange(n_classes - 1, -1, -1, device=counts.device)
    return (counts * n_classes + tiebreak).argmax(dim=1)


def knn_predict(
    train_X,
    train_y,
    test_X,
    ks: Iterable[int] = (1, 20),
    device: str | torch.device = "auto",
    batch_size: int = 1024,
    train_chunk: int = 16384,
    dtype: torch.dtype = torch.float64,
    on_batch=None,
) -> dict[int, np.ndarray]:
    """Predicted labels of ``test_X`` for every k in ``ks`` (one neighbour search for all k).
    ``on_batch(n)`` is called after each batch of ``n`` test rows (a progress bar)."""
    ks = sorted({int(k) for k in ks})
    classes, y_idx = np.unique(np.asarray(train_y), return_inverse=True)
    n_train = len(y_idx)
    if not ks or ks[0] < 1 or ks[-1] > n_train:
        raise ValueError(f"every k must be in [1, {n_train}] (the number of training samples), got {ks}")
    device = resolve_device(device)
    train = to_tensor(train_X, device, dtype)
    if train.shape[0] != n_train:
        raise ValueError(f"train_X has {train.shape[0]} rows but train_y has {n_train} labels")
    train_sq = (train * train).sum(dim=1)
    labels = torch.as_tensor(y_idx.reshape(-1).astype(np.int64), device=device)
    n_test = len(test_X)
    out = {k: np.empty(n_test, dtype=np.int64) for k in ks}
    for start in range(0, n_test, batch_size):
        q = to_tensor(test_X[start : start + batch_size], device, dtype)
        neighbours = labels[_nearest(q, train, train_sq, ks[-1], train_chunk)]
        for k in ks:
            out[k][start : start + len(q)] = _vote(neighbours[:, :k], len(classes)).cpu().numpy()
        if on_batch is not None:
            on_batch(len(q))
    return {k: classes[idx] for k, idx in out.items()}
