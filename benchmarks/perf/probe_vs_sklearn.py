"""Time the torch linear probe against scikit-learn's LogisticRegression on the same features.

Why: the torch solver exists to make the DinoBloom probe fast enough for large
embedding sets (target: >= 10x on a GPU) without changing its answers.  This prints
both fit times (median over repeats; data transfer included, prediction excluded),
the speed-up, prediction agreement and the metric differences.

    python benchmarks/perf/probe_vs_sklearn.py [--n 50000] [--dim 1024] [--classes 21] [--repeats 3]
        [--sklearn-repeats R] [--device auto|cpu|cuda] [--json probe.json]

The default size is the issue's (50,000 x 1,024 x 21 classes). It takes minutes per
scikit-learn fit on a small CPU; use smaller --n/--dim there, or --sklearn-repeats 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import add_json_option, finish, machine, machine_line, median_seconds  # noqa: E402

from hemabench.compute.device import resolve_device  # noqa: E402
from hemabench.protocols.probe import TorchLogisticRegression, probe_C  # noqa: E402
from hemabench.results.metrics import classification_metrics, metric_names  # noqa: E402


def synthetic_embeddings(n_train: int, n_test: int, dim: int, n_classes: int, class_sep: float, seed: int):
    """Imbalanced, partly overlapping classes in a low-rank subspace of a dim-dimensional space."""
    from sklearn.datasets import make_classification

    weights = np.geomspace(1.0, 0.1, n_classes)
    X, y = make_classification(
        n_samples=n_train + n_test, n_features=dim, n_informative=min(64, dim // 2),
        n_redundant=min(32, dim // 4), n_classes=n_classes, n_clusters_per_class=1,
        weights=list(weights / weights.sum()), class_sep=class_sep, flip_y=0.01, random_state=seed,
    )  # fmt: skip
    X = X.astype(np.float32)  # embeddings are stored as float32
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def timed_fits(label: str, make_model, X, y, repeats: int):
    """Fit ``repeats`` times, printing progress; returns (last model, median seconds, list of seconds)."""
    fitted = {}

    def fit():
        fitted["model"] = make_model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-convergence is reported through n_iter below
            fitted["model"].fit(X, y)

    median, seconds = median_seconds(fit, repeats, label=f"{label} fit")
    return fitted["model"], median, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="training samples")
    parser.add_argument("--n-test", type=int, default=None, help="test samples (default n/4)")
    parser.add_argument("--dim", type=int, default=1024, help="feature dimension M")
    parser.add_argument("--classes", type=int, default=21, help="number of classes K")
    parser.add_argument("--repeats", type=int, default=3, help="fits of our solver (median reported)")
    parser.add_argument("--sklearn-repeats", type=int, default=None, help="fits of scikit-learn (default --repeats)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="our GEMM precision")
    parser.add_argument("--class-sep", type=float, default=2.0, help="class separation (lower = harder)")
    parser.add_argument("--seed", type=int, default=0)
    add_json_option(parser)
    args = parser.parse_args(argv)
    n_test = args.n_test or max(1, args.n // 4)
    device, dtype = resolve_device(args.device), getattr(torch, args.dtype)

    info = machine()
    print(machine_line(info), flush=True)
    Xtr, ytr, Xte, yte = synthetic_embeddings(args.n, n_test, args.dim, args.classes, args.class_sep, args.seed)
    C = probe_C(args.dim, args.classes)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"data    : {args.n} train / {n_test} test x {args.dim} features, {args.classes} classes, C={C:g}")
    print(f"device  : {device} ({name}), ours in {args.dtype}; scikit-learn on CPU in float64", flush=True)

    def ours():
        return TorchLogisticRegression(C=C, device=device, dtype=dtype)

    if device.type == "cuda":  # CUDA context and kernels: warm up outside the timing
        ours().fit(Xtr[:512], ytr[:512])
    from sklearn.linear_model import LogisticRegression

    model_t, t_ours, secs_t = timed_fits("ours", ours, Xtr, ytr, args.repeats)
    model_s, t_sk, secs_s = timed_fits(
        "sklearn",
        lambda: LogisticRegression(C=C, max_iter=1000, solver="lbfgs"),
        Xtr.astype(np.float64), ytr, args.sklearn_repeats or args.repeats,
    )  # fmt: skip
    pred_t, pred_s = model_t.predict(Xte), model_s.predict(Xte.astype(np.float64))
    labels = [str(c) for c in model_s.classes_]
    m_t = classification_metrics(yte.astype(str), pred_t.astype(str), labels)
    m_s = classification_metrics(yte.astype(str), pred_s.astype(str), labels)

    agree = float((pred_t == pred_s).mean())
    m_t, m_s = ({k: float(m[k]) for k in metric_names()} for m in (m_t, m_s))
    rows = [
        {"figure": "fit seconds, ours (median)", "value": t_ours, "detail": [round(t, 3) for t in secs_t]},
        {"figure": "fit seconds, scikit-learn (median)", "value": t_sk, "detail": [round(t, 3) for t in secs_s]},
        {"figure": "speed-up (x)", "value": t_sk / t_ours, "detail": ""},
        {"figure": "iterations, ours", "value": int(model_t.n_iter_), "detail": ""},
        {"figure": "iterations, scikit-learn", "value": int(model_s.n_iter_[0]), "detail": ""},
        {"figure": "test predictions agreeing (fraction)", "value": agree, "detail": ""},
    ] + [{"figure": f"{metric} diff (points, ours - sklearn)", "value": 100 * (m_t[metric] - m_s[metric]),
          "detail": f"ours {m_t[metric]:.4f}, sklearn {m_s[metric]:.4f}"} for metric in metric_names()]
    finish(args, "probe_vs_sklearn", f"probe vs scikit-learn: {args.n} x {args.dim} x {args.classes} classes, "
           f"ours on {device}", rows, info, speedup=t_sk / t_ours, seconds_ours=t_ours, seconds_sklearn=t_sk,
           agreement=agree, metrics_ours=m_t, metrics_sklearn=m_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
