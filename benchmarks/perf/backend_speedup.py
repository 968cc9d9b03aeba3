"""The label-efficiency sweep on a local dask cluster of 1 vs 2 workers (``--backend dask``), and locally.

    python benchmarks/perf/backend_speedup.py [--classes 8] [--per-class 600] [--dim 384] [--test 1000]
        [--repetitions 4] [--n-grid 1 5 10 25 50 100 250] [--workers 1 2] [--repeats 1] [--quick] [--json F]

One sweep (``hemabench.protocols.fewshot.sweep``: every repetition x n, the three classifiers
sharing each support set's transform) on seeded synthetic features, timed (median of
--repeats) under joblib's local backend with 1 process, then on a dask LocalCluster of N
single-threaded worker processes for each N in --workers (cluster start-up not timed).
Prints seconds, the speed-up over 1 dask worker, and whether every confusion matrix equals
the local run's (it must: the fits are seeded by their arguments, not by where they run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import finish, median_seconds, print_load, start_script  # noqa: E402


def data(classes: int, per_class: int, dim: int, test: int, seed: int):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, dim)) * 3.0 / np.sqrt(2 * dim)
    y = np.repeat([f"c{i}" for i in range(classes)], per_class + test // classes)
    x = (means[np.searchsorted(sorted(set(y)), y)] + rng.standard_normal((len(y), dim))).astype(np.float32)
    is_test = np.zeros(len(y), bool)
    for c in set(y):
        is_test[np.flatnonzero(y == c)[per_class:]] = True
    return x, y, np.flatnonzero(~is_test), np.flatnonzero(is_test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=600, help="training rows per class")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--test", type=int, default=1000, help="test rows")
    parser.add_argument("--repetitions", type=int, default=4)
    parser.add_argument("--n-grid", type=int, nargs="+", default=[1, 5, 10, 25, 50, 100, 250])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args, info = start_script(parser, argv)
    if args.quick:
        args.classes, args.per_class, args.dim, args.test, args.repetitions, args.n_grid = 3, 30, 8, 60, 2, [2, 5]
    from distributed import Client, LocalCluster

    from hemabench.compute.backends import fit_backend
    from hemabench.protocols.fewshot import support_permutations, sweep

    x, y, train, test = data(args.classes, args.per_class, args.dim, args.test, args.seed)
    perms = support_permutations(train, y, args.repetitions, args.seed)
    labels = sorted(set(y))
    print(f"sweep: {len(train)} train / {len(test)} test rows x {args.dim}-d, {args.classes} classes, "
          f"{args.repetitions} repetitions x n {args.n_grid} x 3 classifiers", flush=True)
    print_load("at start")

    def timed(label: str, **kwargs):
        out = {}

        def run():
            out["r"] = sweep(x, y, perms, x[test], y[test], labels, tuple(args.n_grid), seed=args.seed, **kwargs)

        median, times = median_seconds(run, args.repeats, label=label)
        return median, times, out["r"]

    t_local, times_local, local = timed("local, 1 process", n_jobs=1)
    rows = [{"run": "local (joblib, 1 process)", "workers": 1, "seconds": t_local, "speed-up": 1.0,
             "identical to local": True, "fits": local["fits"], "times": [round(t, 2) for t in times_local]}]
    base = None
    for n in args.workers:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster), fit_backend("dask", cluster.scheduler_address):
            seconds, times, result = timed(f"dask, {n} worker(s)")
        base = base or seconds
        same = all(np.array_equal(np.asarray(local["confusions"][k]), np.asarray(result["confusions"][k]))
                   for k in local["confusions"])
        rows.append({"run": f"dask LocalCluster, {n} worker(s)", "workers": n, "seconds": seconds,
                     "speed-up": base / seconds, "identical to local": same, "fits": result["fits"],
                     "times": [round(t, 2) for t in times]})
    print_load("at the end")
    finish(args, "backend_speedup", "label-efficiency sweep: local vs dask workers (speed-up over 1 dask worker)",
           rows, info, identical=all(r["identical to local"] for r in rows))
    return 0 if all(r["identical to local"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
