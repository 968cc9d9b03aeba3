"""Time the label-efficiency fits: hemabench's fast engine vs a plain scikit-learn loop on the same support sets.

    python benchmarks/perf/label_efficiency_sweep.py [--dataset synth-bm] [--encoder handcrafted]
        [--synthetic-features acevedo|matek-blood|matek-bm --dim 384] [--repetitions 100]
        [--reference-repetitions R] [--root DIR] [--jobs N] [--repeats 3] [--json sweep.json]

Both run the same fits (every repetition x n x classifier of the Wenderoth protocol, the
default grid) on the same features and support sets, one after another in this process: the
engine shares the transform, PCA and test distances between the three classifiers of a support
set; the plain loop builds ``make_pipeline(PowerTransformer(), PCA(), classifier)`` for every
fit. The plain loop is slow (minutes per repetition at real sizes): both run on the first
``--reference-repetitions`` support sets. Written to --json at the top level: ``speedup`` (plain
loop seconds / engine seconds, same fits), ``max_mean_diff_points`` (largest difference of the
mean balanced accuracy over repetitions, any classifier and n, in points) and
``prediction_agreement`` (fraction of identical test predictions over all fits). With
``--repetitions`` above that, hemabench's whole sweep (joblib workers, fixed repetitions) is timed too.

``--synthetic-features NAME`` needs no data: class Gaussians at that dataset's real class sizes
(benchmarks/perf/_scale.py), cut 70/30 per class as the registered split does, ``--dim`` wide.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import add_json_option, finish, machine, machine_line, median_seconds  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import PowerTransformer  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from hemabench.protocols.fewshot import (  # noqa: E402
    CLASSIFIERS,
    N_GRID,
    fit_predict,
    make_classifier,
    support_permutations,
    support_set,
    sweep,
)


def sklearn_loop(X, y, perms, test, n_grid, seed) -> dict:
    """The straightforward version: a fresh scikit-learn pipeline for every fit, one after another.
    (classifier, n, repetition) -> test predictions."""
    preds = {}
    for name in CLASSIFIERS:
        for n in n_grid:
            for rep, perm in enumerate(perms):
                rows = support_set(perm, n)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = make_pipeline(PowerTransformer(), PCA(), make_classifier(name, seed, n_train=len(rows)))
                    model.fit(X[rows], y[rows])
                    preds[(name, n, rep)] = model.classes_[model.predict_proba(X[test]).argmax(axis=1)]
    return preds


def engine_loop(X, y, perms, test, n_grid, seed) -> dict:
    """hemabench's fast engine on the same fits, one support set (three classifiers) after another."""
    preds = {}
    for n in n_grid:
        for rep, perm in enumerate(perms):
            rows = support_set(perm, n)
            for name, p in fit_predict(X[rows], y[rows], X[test], CLASSIFIERS, seed, engine="fast").items():
                preds[(name, n, rep)] = p
    return preds


def compare(ours: dict, theirs: dict, y_test) -> tuple[float, float, tuple]:
    """(largest difference of mean balanced accuracy in points, fraction of identical predictions, where)."""
    same = sum(int((ours[k] == theirs[k]).sum()) for k in theirs)
    total = sum(len(theirs[k]) for k in theirs)
    means: dict[tuple, list] = {}
    for (name, n, _), pred in theirs.items():
        means.setdefault((name, n), []).append((balanced_accuracy_score(y_test, ours[(name, n, _)]),
                                                balanced_accuracy_score(y_test, pred)))
    diffs = {k: 100 * abs(np.mean([a for a, _ in v]) - np.mean([b for _, b in v])) for k, v in means.items()}
    worst = max(diffs, key=diffs.get)
    return diffs[worst], same / total, worst


def load_features(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(X, y, train rows, test rows, description): a dataset's cached embeddings or synthetic features."""
    if args.synthetic_features:
        from _scale import COUNTS, Synthetic, split_counts

        data = Synthetic(COUNTS[args.synthetic_features], args.dim, args.seed)
        train_counts, test_counts = split_counts(COUNTS[args.synthetic_features], 0.7)
        (xa, ya), (xb, yb) = data.draw(train_counts), data.draw(test_counts)
        X, y = np.concatenate([xa, xb]).astype(np.float64), np.concatenate([ya, yb])
        return X, y, np.arange(len(ya)), np.arange(len(ya), len(y)), f"synthetic {args.synthetic_features} sizes"
    from hemabench.datasets import load_dataset
    from hemabench.embeddings import extract_embeddings
    from hemabench.encoders import load_encoder
    from hemabench.splits import MaterialisedSplit, get_rule

    discovery = load_dataset(args.dataset, root=args.root)
    embeddings, _ = extract_embeddings(load_encoder(args.encoder), discovery.root, discovery.records,
                                       dataset=args.dataset, progress=False)
    X, y = np.asarray(embeddings.features, dtype=np.float64), discovery.records["label"].to_numpy().astype(str)
    rule = get_rule(args.dataset, "holdout-70-30" if args.dataset != "raabin" else None)
    parts = MaterialisedSplit.build(args.dataset, rule, discovery.records).assignment["part"].to_numpy()
    rotation = rule.rotations()[0]
    return (X, y, np.flatnonzero(np.isin(parts, rotation["train"])), np.flatnonzero(np.isin(parts, rotation["test"])),
            f"{args.dataset} x {args.encoder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synth-bm")
    parser.add_argument("--encoder", default="handcrafted")
    parser.add_argument("--root")
    parser.add_argument("--synthetic-features", choices=["acevedo", "matek-blood", "matek-bm"],
                        help="no data: synthetic features at this dataset's real class sizes")
    parser.add_argument("--dim", type=int, default=384, help="feature width of --synthetic-features")
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--grid", type=int, nargs="+", default=list(N_GRID), help="the n of the sweep (default: the task's)")
    parser.add_argument("--reference-repetitions", type=int, default=None,
                        help="run the engine and the scikit-learn loop on the first R repetitions (default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="joblib workers for the whole sweep (default: all cores)")
    parser.add_argument("--repeats", type=int, default=1, help="timings of the whole sweep (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads of the engine-vs-loop comparison")
    parser.add_argument("--seed", type=int, default=0)
    add_json_option(parser)
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info), flush=True)
    X, y, train, test, what = load_features(args)
    perms = support_permutations(train, y, args.repetitions, args.seed)
    labels, grid = sorted(set(y)), tuple(args.grid)
    r = min(args.reference_repetitions or args.repetitions, args.repetitions)
    print(f"{what}: {len(train)} train / {len(test)} test, {X.shape[1]}-d, {len(labels)} classes; grid {list(grid)}; "
          f"engine and loop on {r} repetition(s), {args.threads} BLAS thread(s)", flush=True)
    with threadpool_limits(args.threads):
        tick = time.perf_counter()
        ours = engine_loop(X, y, perms[:r], test, grid, args.seed)
        t_engine = time.perf_counter() - tick
        print(f"  engine: {t_engine:.1f} s", flush=True)
        tick = time.perf_counter()
        theirs = sklearn_loop(X, y, perms[:r], test, grid, args.seed)
        t_plain = time.perf_counter() - tick
        print(f"  scikit-learn loop: {t_plain:.1f} s", flush=True)
    diff, agreement, worst = compare(ours, theirs, y[test])
    rows = [
        {"figure": f"fast engine, {r} repetition(s) x {len(grid)} n x 3 classifiers (s)", "value": t_engine, "detail": ""},
        {"figure": f"scikit-learn loop, same {len(theirs)} fits (s)", "value": t_plain, "detail": ""},
        {"figure": "speed-up, same fits (x)", "value": t_plain / t_engine, "detail": f"{args.threads} BLAS thread(s)"},
        {"figure": "largest difference, mean balanced accuracy (points)", "value": diff,
         "detail": f"at {worst[0]}, n={worst[1]}"},
        {"figure": "identical test predictions (fraction)", "value": agreement, "detail": f"{len(theirs)} fits"},
    ]
    extra = {}
    if args.repetitions > r:
        out = {}

        def run():
            out["sweep"] = sweep(X, y, perms, X[test], y[test], labels, grid, CLASSIFIERS, seed=args.seed,
                                 n_jobs=args.jobs)

        t_full, times_full = median_seconds(run, args.repeats, label="hemabench sweep")
        rows.append({"figure": f"hemabench sweep, all {args.repetitions} repetitions (s, median)", "value": t_full,
                     "detail": f"{out['sweep']['fits']} fits; " + ", ".join(f"{t:.1f}" for t in times_full)})
        extra["seconds_full_sweep"] = t_full
    finish(args, "label_efficiency_sweep", f"label-efficiency fits, fast engine vs scikit-learn loop: {what}", rows,
           info, speedup=t_plain / t_engine, max_mean_diff_points=diff, prediction_agreement=agreement,
           seconds_engine=t_engine, seconds_reference=t_plain, reference_repetitions=r, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
