"""Linear probe on frozen embeddings: the DinoBloom protocol, solved with torch.

DinoBloom evaluates encoders with scikit-learn's ``LogisticRegression(C=M*K/100,
max_iter=1000, solver="lbfgs")`` on raw features.  That is slow on large feature sets,
so :class:`TorchLogisticRegression` minimises *the same objective* with *the same
algorithm* in torch (GPU when there is one).  The objective is scikit-learn's own
(1.9: ``_logistic_regression_path`` sets ``l2_reg_strength = 1.0 / (C * sw_sum)`` and
``LinearModelLoss.loss_gradient`` returns ``sum(loss)/sw_sum + 0.5*l2_reg_strength*||W||^2``)::

    K > 2:  mean_i [ logsumexp_k(z_ik) - z_i,y_i ] + 1/(2*C*n) * ||W||_F^2
    K = 2:  mean_i [ log(1 + exp(z_i)) - y_i*z_i ] + 1/(2*C*n) * ||w||^2

with ``z = X @ W + b``; the intercept ``b`` is fitted and not penalised.  Binary problems
use the binomial loss with one weight vector, as scikit-learn does (a 2-class softmax
would halve the effective C).

Why copy the optimiser too: with C = M*K/100 the penalty is tiny, the optimum is flat,
and scikit-learn stops at max|grad| <= 1e-4 (or after 1000 iterations) well short of
it: on make_classification data its predictions differ from the exact minimiser's on
3-5% of test samples.  Any other optimiser stops somewhere else.  So :func:`lbfgs`
replays scipy's L-BFGS-B as scikit-learn calls it (m=10 corrections, More-Thuente line
search with ftol=1e-3/gtol=0.9/xtol=0.1, maxls=50, first step 1/||g||, pgtol=tol,
factr=64, the same skip and restart rules), which lands on the same point.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from hemabench.compute.device import resolve_device
from hemabench.protocols.lbfgs import MAX_ITER, TOL, lbfgs
from hemabench.protocols.threads import cpu_threads


def to_tensor(X, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A 2-d float tensor on ``device`` (no copy when already there in ``dtype``)."""
    if isinstance(X, torch.Tensor):
        t = X
    else:
        with warnings.catch_warnings():  # read-only arrays (memmaps) are fine: we never write
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(np.ascontiguousarray(X))
    if t.ndim != 2:
        raise ValueError(f"expected a 2-d feature matrix, got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=dtype)


def probe_C(n_features: int, n_classes: int) -> float:
    """DinoBloom's inverse regularisation strength, C = M*K/100."""
    return n_features * n_classes / 100.0


def _objective(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, l2: float, binary: bool):
    """scikit-learn's objective and its analytic gradient; W is float64 (M+1, k_out), last row = intercept.

    Only the two GEMMs run in X's dtype; the loss, gradient and optimiser state stay
    float64, so a float32 feature matrix costs little agreement.
    """
    n, m = X.shape
    weights = W[:m]
    z = torch.addmm(W[m].to(X.dtype), X, weights.to(X.dtype)).double()  # (n, k_out)
    if binary:  # with s = 1-2y: loss log(1+exp(s*z)), gradient s*sigmoid(s*z), free of cancellation
        sign = 1.0 - 2.0 * y
        sz = sign * z[:, 0]
        loss = torch.logaddexp(sz, torch.zeros_like(sz)).mean()
        r = (sign * torch.sigmoid(sz)).unsqueeze(1)
    else:
        lse = torch.logsumexp(z, dim=1)
        loss = (lse - z.gather(1, y.unsqueeze(1)).squeeze(1)).mean()
        r = torch.exp(z - lse.unsqueeze(1))
        r.scatter_add_(1, y.unsqueeze(1), torch.full_like(r[:, :1], -1.0))
    r /= n
    loss = loss + 0.5 * l2 * weights.pow(2).sum()
    grad = torch.empty_like(W)
    grad[:m] = (X.T @ r.to(X.dtype)).double() + l2 * weights
    grad[m] = r.sum(dim=0)
    return loss, grad


SMALL_PROBLEM = 5_000_000  # samples x features x classes below which the CPU fit runs on one thread


class TorchLogisticRegression:
    """Multinomial (binomial for K=2) L2 logistic regression: sklearn's objective and L-BFGS, in torch.

    ``dtype`` is the precision of the feature matrix and of the two GEMMs per evaluation;
    it defaults to float64 on every device because agreement with scikit-learn matters
    more than speed and float64 GEMMs are still cheap on a datacentre GPU.  float32 halves
    memory and speeds up consumer GPUs; weights, loss and L-BFGS state stay float64.
    """

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = MAX_ITER,
        tol: float = TOL,
        device: str | torch.device = "auto",
        dtype: torch.dtype | None = None,
        on_iteration=None,
    ) -> None:
        self.on_iteration = on_iteration  # called after each L-BFGS iteration (progress)
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.device = device
        self.dtype = dtype

    def fit(self, X, y) -> TorchLogisticRegression:
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(f"logistic regression needs at least 2 classes, got {n_classes}")
        device, dtype = resolve_device(self.device), self.dtype or torch.float64
        Xt = to_tensor(X, device, dtype)
        n, m = Xt.shape
        if n != len(y_idx):
            raise ValueError(f"X has {n} rows but y has {len(y_idx)} labels")
        binary = n_classes == 2
        yt = torch.as_tensor(y_idx.reshape(-1).astype(np.int64), device=device)
        if binary:
            yt = yt.double()
        l2, shape = 1.0 / (self.C * n), (m + 1, 1 if binary else n_classes)

        def fg(w: torch.Tensor):
            loss, grad = _objective(w.view(shape), Xt, yt, l2, binary)
            return loss.item(), grad.view(-1)

        w0 = torch.zeros(math.prod(shape), dtype=torch.float64, device=device)
        small = n * m * shape[1] < SMALL_PROBLEM  # threads only add overhead (and lose badly on shared cores)
        with cpu_threads(1 if small else None, device):
            w, self.n_iter_, self.status_ = lbfgs(fg, w0, max_iter=self.max_iter, gtol=self.tol,
                                                      on_iteration=self.on_iteration)
        if not self.status_.startswith("converged"):
            warnings.warn(f"L-BFGS stopped without converging ({self.status_}, {self.n_iter_} iterations)",
                          RuntimeWarning, stacklevel=2)  # fmt: skip
        self._W = w.view(shape)
        self.coef_ = self._W[:m].T.cpu().numpy()
        self.intercept_ = self._W[m].cpu().numpy()
        self._device, self._dtype = device, dtype
        return self

    def decision_function(self, X) -> torch.Tensor:
        """Raw scores on the fitting device: (n,) for binary, (n, K) otherwise."""
        Xt = to_tensor(X, self._device, self._dtype)
        z = torch.addmm(self._W[-1].to(self._dtype), Xt, self._W[:-1].to(self._dtype))
        return z[:, 0] if len(self.classes_) == 2 else z

    def predict_proba(self, X) -> np.ndarray:
        z = self.decision_function(X)
        if z.ndim == 1:
            p = torch.sigmoid(z)
            return torch.stack([1 - p, p], dim=1).cpu().numpy()
        return torch.softmax(z, dim=1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        z = self.decision_function(X)
        idx = (z > 0).long() if z.ndim == 1 else z.argmax(dim=1)
        return self.classes_[idx.cpu().numpy()]


C_RULE = "M*K/100"  # DinoBloom's reference code: M = feature dimension, K = classes


def resolve_C(C: float | str | None, n_features: int, n_classes: int) -> float:
    """A number, or the rule ``"M*K/100"`` (the default) evaluated for this fit."""
    if C is None or C == C_RULE:
        return probe_C(n_features, n_classes)
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
        raise ValueError(f"C must be a positive number or {C_RULE!r}, got {C!r}")
    return float(C)


def standardise_features(train_X, test_X) -> tuple[np.ndarray, np.ndarray]:
    """z-scores with the training rows' mean and standard deviation (constant columns left at 0)."""
    train_X, test_X = np.asarray(train_X, dtype=np.float64), np.asarray(test_X, dtype=np.float64)
    mean, std = train_X.mean(axis=0), train_X.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train_X - mean) / std, (test_X - mean) / std


def fit_probe(
    train_X,
    train_y,
    test_X,
    solver: str = "torch",
    device: str | torch.device = "auto",
    C: float | str | None = None,
    max_iter: int = MAX_ITER,
    standardise: bool = False,
    info: dict | None = None,
    on_iteration=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the DinoBloom probe and return (predicted labels, class probabilities) for test_X.

    ``C``: a number, or ``"M*K/100"`` (None) with M the feature dimension and K the number of
    distinct labels in ``train_y``. ``standardise``: z-score features with training statistics
    first (DinoBloom does not). ``solver='sklearn'`` is the reference ``LogisticRegression``;
    it is given float64 features, as is ours. ``info``, when given, is filled with the solver,
    C, iteration count and stopping status. ``on_iteration()`` is called after each iteration of
    the torch solver (a progress bar; scikit-learn's solver reports none).
    """
    n_features, n_classes = np.shape(train_X)[1], len(np.unique(np.asarray(train_y)))
    C = resolve_C(C, n_features, n_classes)
    if solver not in ("torch", "sklearn"):
        raise ValueError(f"unknown solver {solver!r}; use 'torch' or 'sklearn'")
    if standardise:
        train_X, test_X = standardise_features(train_X, test_X)
    with warnings.catch_warnings():
        if info is not None:  # the caller records the stopping status: no warning needed
            warnings.filterwarnings("ignore", message="L-BFGS stopped without converging")
            warnings.filterwarnings("ignore", message="lbfgs failed to converge")
        if solver == "torch":
            model = TorchLogisticRegression(C=C, max_iter=max_iter, device=device, on_iteration=on_iteration)
            model.fit(train_X, train_y)
        else:
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs")
            model.fit(np.asarray(train_X, dtype=np.float64), np.asarray(train_y))
            test_X = np.asarray(test_X, dtype=np.float64)
    if info is not None:
        n_iter = int(np.max(model.n_iter_))
        info.update(solver=solver, C=C, n_iter=n_iter,
                    status=getattr(model, "status_", "converged" if n_iter < max_iter else "max_iter"))
    return model.predict(test_X), model.predict_proba(test_X)
