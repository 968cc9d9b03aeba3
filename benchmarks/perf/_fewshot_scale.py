"""The few-shot part of protocols_at_scale.py: every grid point of label-efficiency and bm-to-blood
timed at the real class sizes with hemabench's engine, the plain scikit-learn pipeline timed on
the same support set at the largest n, and the full tasks projected from the measurements.
Not a benchmark itself (see protocols_at_scale.py)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from _scale import COUNTS, SOURCE_PER_CLASS, Synthetic, sample_counts, split_counts, support_counts
from extraction_memory import proc_status_mb, reset_peak

from hemabench.protocols.fewshot import N_GRID, fit_predict, make_classifier
from hemabench.protocols.stopping import DEFAULT_BLOCK, DEFAULT_MINIMUM, DEFAULT_PRECISION
from hemabench.results.intervals import t_quantile

MAX_REPETITIONS = 100


def balanced(y_true, pred) -> float:
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():  # direct transfer: source classes the target lacks
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y_true, pred))


def timed_fit(x, y, test_x, test_y, classifiers, seed: int, engine: str = "fast") -> dict:
    """One support set through the pipeline: seconds, peak working-set growth (MB), balanced accuracy per classifier."""
    before = proc_status_mb("VmRSS")
    reset_peak()
    tick = time.perf_counter()
    preds = fit_predict(x, y, test_x, classifiers, seed, engine=engine)
    seconds = time.perf_counter() - tick
    return {"seconds": seconds, "memory_mb": max(0.0, proc_status_mb("VmHWM") - before),
            "scores": {c: balanced(test_y, p) for c, p in preds.items()}}


def plain_seconds(x, y, test_x, classifiers, seed: int) -> float:
    """The plain scikit-learn pipeline, one make_pipeline per classifier, on the same support set."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PowerTransformer

    tick = time.perf_counter()
    for name in classifiers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make_pipeline(PowerTransformer(), PCA(), make_classifier(name, seed, n_train=len(x))).fit(x, y)
            model.predict_proba(test_x)
    return time.perf_counter() - tick


def adaptive_repetitions(spread: float) -> int:
    """Repetitions the default rule would run at this spread over support sets (blocks of 10, 10 to 100)."""
    if not math.isfinite(spread):
        return MAX_REPETITIONS
    for count in range(DEFAULT_MINIMUM, MAX_REPETITIONS + 1, DEFAULT_BLOCK):
        if t_quantile(count - 1) * spread / math.sqrt(count) <= DEFAULT_PRECISION:
            return count
    return MAX_REPETITIONS


def measure_grid(name: str, dim: int, args, classifiers, test=None, reference: bool = True) -> dict:
    """Per n of the grid (identical support sets once): --repeats seeded support sets timed with the
    engine; the plain pipeline on the first support set of the largest n (``reference``).
    ``test``: (features, labels) predicted (default: this dataset's real test set, drawn)."""
    from threadpoolctl import threadpool_limits

    data = Synthetic(COUNTS[name], dim, args.seed)
    train, test_counts = split_counts(COUNTS[name], 0.7)
    test_x, test_y = test or data.draw(sample_counts(test_counts, args.test_rows) if args.test_rows else test_counts)
    largest = max(train.values())
    out = {"per_n": {}, "n_test": len(test_x), "classifiers": tuple(classifiers)}
    seen = set()
    for n in args.grid:
        counts = support_counts(train, n)
        m = sum(counts.values())
        if m in seen:
            continue  # n at or above every class's size: the same support set, fitted once by the sweep
        seen.add(m)
        runs = []
        with threadpool_limits(1):  # as in a joblib worker
            for _ in range(args.repeats):
                x, y = data.draw(counts)
                runs.append(timed_fit(x, y, test_x, test_y, classifiers, args.seed))
            row = {"rows": m, "saturated": n >= largest, "seconds": [r["seconds"] for r in runs],
                   "memory_mb": max(r["memory_mb"] for r in runs),
                   "spread": {c: float(np.std([r["scores"][c] for r in runs], ddof=1)) if len(runs) > 1 else math.inf
                              for c in classifiers}}
            if reference and (n == args.grid[-1] or n >= largest):
                row["plain_seconds"] = plain_seconds(x, y, test_x, classifiers, args.seed)
        out["per_n"][n] = row
        print(f"  {name} D={dim} {'+'.join(classifiers)} n={n}: {m} rows x {len(test_x)} test, engine "
              + ", ".join(f"{s:.2f}" for s in row["seconds"]) + " s"
              + (f"; plain scikit-learn {row['plain_seconds']:.1f} s" if "plain_seconds" in row else ""), flush=True)
        if n >= largest:
            break
    return out


def project(grid: dict) -> dict:
    """Serial seconds of the full sweep at the rule's cap (100 repetitions per n) and at the
    repetitions the rule would run at the measured spreads; fits; the measured engine/plain ratio."""
    fixed = adaptive = 0.0
    fits = 0
    for row in grid["per_n"].values():
        unit = float(np.mean(row["seconds"]))
        if row["saturated"]:
            reps_fixed = reps_adaptive = 1  # identical support sets: one fit serves every repetition
        else:
            reps_fixed = MAX_REPETITIONS
            reps_adaptive = max(adaptive_repetitions(s) for s in row["spread"].values())
        row.update(repetitions_at_cap=reps_fixed, repetitions_adaptive=reps_adaptive)
        fixed += unit * reps_fixed
        adaptive += unit * reps_adaptive
        fits += reps_fixed * len(grid["classifiers"])
    largest = grid["per_n"][max(grid["per_n"])]
    ratio = largest["plain_seconds"] / float(np.mean(largest["seconds"])) if "plain_seconds" in largest else None
    return {"serial_fixed": fixed, "serial_adaptive": adaptive, "fits": fits, "ratio": ratio,
            "largest_rows": largest["rows"], "memory_mb": max(r["memory_mb"] for r in grid["per_n"].values())}


def measure_direct(target: str, dim: int, args, test) -> dict:
    """bm-to-blood's direct fit: SOURCE_PER_CLASS Matek BM cells per class, predicting the target's test set."""
    from threadpoolctl import threadpool_limits

    source = Synthetic(COUNTS["matek-bm"], dim, args.seed + 7)
    src_train, _ = split_counts(COUNTS["matek-bm"], 0.7)
    counts = support_counts(src_train, SOURCE_PER_CLASS)
    with threadpool_limits(1):
        runs = [timed_fit(*source.draw(counts), test[0], test[1], ("svm",), args.seed) for _ in range(args.repeats)]
    seconds = [r["seconds"] for r in runs]
    scores = [r["scores"]["svm"] for r in runs]
    print(f"  bm-to-blood {target} D={dim} direct: {sum(counts.values())} BM rows x {len(test[0])} test, engine "
          + ", ".join(f"{s:.2f}" for s in seconds) + " s", flush=True)
    return {"seconds": float(np.mean(seconds)), "rows": sum(counts.values()), "memory_mb": max(r["memory_mb"] for r in runs),
            "repetitions_adaptive": adaptive_repetitions(float(np.std(scores, ddof=1)) if len(runs) > 1 else math.inf)}


DEFAULT_GRID = list(N_GRID)
