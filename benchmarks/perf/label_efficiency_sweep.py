"""Time the default label-efficiency sweep on one dataset: hemabench's path vs a plain scikit-learn loop.

    python benchmarks/perf/label_efficiency_sweep.py [--dataset synth-bm] [--encoder handcrafted]
        [--repetitions 100] [--reference-repetitions R] [--root DIR] [--jobs N]
        [--repeats 3] [--reference-repeats 1] [--json sweep.json]

Both run the same fits (every repetition x n x classifier of the Wenderoth protocol) on the
same cached embeddings and support sets. Prints both times (medians over --repeats timings of
hemabench's sweep and --reference-repeats timings of the plain loop), the speed-up, and the
largest difference in mean balanced accuracy over all (classifier, n) points. The plain loop
is slow (seconds to minutes per repetition): ``--reference-repetitions R`` runs it on the
first R support sets only, and the comparison and speed-up are then made on those R
repetitions (hemabench's sweep is timed on them too).
"""

from __future__ import annotations

import argparse
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synth-bm")
    parser.add_argument("--encoder", default="handcrafted")
    parser.add_argument("--root")
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--reference-repetitions", type=int, default=None,
                        help="run the scikit-learn loop on the first R repetitions only (default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="joblib workers for hemabench's path (default: all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timings of hemabench's sweep (median reported)")
    parser.add_argument("--reference-repeats", type=int, default=1, help="timings of the scikit-learn loop (median)")
    parser.add_argument("--seed", type=int, default=0)
    add_json_option(parser)
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info), flush=True)

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

    def timed_sweep(reps: int, label: str):
        """hemabench's sweep over the first ``reps`` support sets: (median s, times, mean balanced
        accuracy per (classifier, n), pipeline fits)."""
        out = {}

        def run():
            out["sweep"] = sweep(X, y, perms[:reps], X[test], y[test], labels, N_GRID, CLASSIFIERS, seed=args.seed,
                                 n_jobs=args.jobs)

        median, times = median_seconds(run, args.repeats, label=label)
        means = {k: float(np.mean([balanced_accuracy_score(*expand_confusion(c, labels)) for c in v]))
                 for k, v in out["sweep"]["confusions"].items()}
        return median, times, means, out["sweep"]["fits"]

    t_full, times_full, ours_mean, fits = timed_sweep(args.repetitions, "hemabench sweep")
    print(f"hemabench sweep: {t_full:8.1f} s ({fits} pipeline fits after sharing and de-duplication)")

    r = min(args.reference_repetitions or args.repetitions, args.repetitions)
    reference = {}

    def run_reference():
        reference.update(sklearn_loop(X, y, perms[:r], test, N_GRID, args.seed))

    t_ref, times_ref = median_seconds(run_reference, args.reference_repeats, label="scikit-learn loop")
    print(f"scikit-learn loop: {t_ref:6.1f} s ({len(reference) * r} pipeline fits, {r} repetitions)")
    t_ours, times_ours = t_full, times_full
    if r < args.repetitions:
        t_ours, times_ours, ours_mean, _ = timed_sweep(r, f"hemabench sweep on the same {r} repetitions")
    diff = max(abs(ours_mean[k] - reference[k]) for k in reference)
    worst = max(reference, key=lambda k: abs(ours_mean[k] - reference[k]))
    rows = [
        {"figure": f"hemabench sweep, all {args.repetitions} repetitions (s, median)", "value": t_full,
         "detail": [round(t, 2) for t in times_full]},
        {"figure": f"scikit-learn loop, {r} repetitions (s, median)", "value": t_ref,
         "detail": [round(t, 2) for t in times_ref]},
        {"figure": "scikit-learn loop per repetition (s)", "value": t_ref / r, "detail": ""},
        {"figure": f"hemabench sweep, same {r} repetitions (s, median)", "value": t_ours,
         "detail": [round(t, 2) for t in times_ours]},
        {"figure": f"speed-up on {r} repetitions (x)", "value": t_ref / t_ours, "detail": ""},
        {"figure": "largest difference, mean balanced accuracy (points)", "value": 100 * diff,
         "detail": f"at {worst[0]}, n={worst[1]}"},
    ]
    finish(args, "label_efficiency_sweep", f"label-efficiency sweep vs scikit-learn loop: {args.dataset} x "
           f"{args.encoder}", rows, info, seconds_full_sweep=t_full, seconds_reference=t_ref,
           reference_repetitions=r, speedup=t_ref / t_ours, max_diff_points=100 * diff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
