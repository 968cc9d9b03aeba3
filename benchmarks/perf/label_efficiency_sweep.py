"""Time the default label-efficiency sweep on one dataset: hemabench's path vs a plain scikit-learn loop.

    python benchmarks/perf/label_efficiency_sweep.py [--dataset synth-bm] [--encoder handcrafted]
        [--repetitions 100] [--reference-repetitions R] [--root DIR] [--jobs N]

Both run the same fits (every repetition x n x classifier of the Wenderoth protocol) on the
same cached embeddings and support sets. Prints both times, the speed-up, and the largest
difference in mean balanced accuracy over all (classifier, n) points. The plain loop is slow
(minutes per repetition): ``--reference-repetitions R`` runs it on the first R support sets
only, and the comparison and speed-up are then made on those R repetitions.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import PowerTransformer  # noqa: E402

from hemabench.datasets import load_dataset  # noqa: E402
from hemabench.embeddings import extract_embeddings  # noqa: E402
from hemabench.encoders import load_encoder  # noqa: E402
from hemabench.protocols.fewshot import CLASSIFIERS, N_GRID, make_classifier, support_permutations, support_set, sweep  # noqa: E402
from hemabench.results.scoring import expand_confusion  # noqa: E402
from hemabench.splits import MaterialisedSplit, get_rule  # noqa: E402


def sklearn_loop(X, y, perms, test, n_grid, seed):
    """The straightforward version: a fresh scikit-learn pipeline for every fit, one after another."""
    scores = {}
    for name in CLASSIFIERS:
        for n in n_grid:
            values = []
            for perm in perms:
                rows = support_set(perm, n)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = make_pipeline(PowerTransformer(), PCA(), make_classifier(name, seed)).fit(X[rows], y[rows])
                    pred = model.classes_[model.predict_proba(X[test]).argmax(axis=1)]
                values.append(balanced_accuracy_score(y[test], pred))
            scores[(name, n)] = float(np.mean(values))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synth-bm")
    parser.add_argument("--encoder", default="handcrafted")
    parser.add_argument("--root")
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--reference-repetitions", type=int, default=None,
                        help="run the scikit-learn loop on the first R repetitions only (default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="joblib workers for hemabench's path (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    discovery = load_dataset(args.dataset, root=args.root)
    embeddings, _ = extract_embeddings(load_encoder(args.encoder), discovery.root, discovery.records,
                                       dataset=args.dataset, progress=False)
    X, y = np.asarray(embeddings.features, dtype=np.float64), discovery.records["label"].to_numpy().astype(str)
    rule = get_rule(args.dataset, "holdout-70-30" if args.dataset != "raabin" else None)
    parts = MaterialisedSplit.build(args.dataset, rule, discovery.records).assignment["part"].to_numpy()
    rotation = rule.rotations()[0]
    train, test = np.flatnonzero(np.isin(parts, rotation["train"])), np.flatnonzero(np.isin(parts, rotation["test"]))
    perms = support_permutations(train, y, args.repetitions, args.seed)
    labels = sorted(set(y))
    print(f"{args.dataset} x {args.encoder}: {len(train)} train / {len(test)} test, {X.shape[1]}-d, "
          f"{len(labels)} classes, {args.repetitions} repetitions x {len(N_GRID)} n x {len(CLASSIFIERS)} classifiers")

    start = time.perf_counter()
    ours = sweep(X, y, perms, X[test], y[test], labels, N_GRID, CLASSIFIERS, seed=args.seed, n_jobs=args.jobs)
    t_ours = time.perf_counter() - start
    ours_mean = {k: float(np.mean([balanced_accuracy_score(*expand_confusion(c, labels)) for c in v]))
                 for k, v in ours["confusions"].items()}
    print(f"hemabench sweep: {t_ours:8.1f} s ({ours['fits']} pipeline fits after sharing and de-duplication)")

    r = min(args.reference_repetitions or args.repetitions, args.repetitions)
    start = time.perf_counter()
    reference = sklearn_loop(X, y, perms[:r], test, N_GRID, args.seed)
    t_ref = time.perf_counter() - start
    print(f"scikit-learn loop: {t_ref:6.1f} s ({len(reference) * r} pipeline fits, {r} repetitions)")
    if r < args.repetitions:
        start = time.perf_counter()
        prefix = sweep(X, y, perms[:r], X[test], y[test], labels, N_GRID, CLASSIFIERS, seed=args.seed, n_jobs=args.jobs)
        t_ours = time.perf_counter() - start
        ours_mean = {k: float(np.mean([balanced_accuracy_score(*expand_confusion(c, labels)) for c in v]))
                     for k, v in prefix["confusions"].items()}
        print(f"hemabench sweep on the same {r} repetitions: {t_ours:.1f} s")
    diff = max(abs(ours_mean[k] - reference[k]) for k in reference)
    worst = max(reference, key=lambda k: abs(ours_mean[k] - reference[k]))
    print(f"speed-up: {t_ref / t_ours:.1f}x; largest difference in mean balanced accuracy: {100 * diff:.3f} points "
          f"(at {worst[0]}, n={worst[1]})")


if __name__ == "__main__":
    main()
