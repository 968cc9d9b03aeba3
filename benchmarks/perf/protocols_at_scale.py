"""What the full protocols cost at the real datasets' sizes: time each unit of work, project each task.

    python benchmarks/perf/protocols_at_scale.py [--datasets acevedo matek-blood matek-bm aml-hehr]
        [--dims 384 1024] [--repeats 3] [--test-rows 0] [--grid 1 5 ... 2000] [--workers 2]
        [--no-reference] [--quick] [--json scale.json]

Synthetic features with the real class sizes (hard-coded in _scale.py from the datasets' published
counts), cut by the registered splits (label-efficiency and transfer: stratified 70/30; probe
and kNN: Acevedo 5-fold CV, Matek 80/20; aml-mil: 5 patient folds, 3 train / 1 val / 1 test).
Features are class Gaussians in a 64-d subspace plus small isotropic noise (see Synthetic):
separable but overlapping classes, as with real embeddings.

* label-efficiency: every grid point is MEASURED (nothing extrapolated): --repeats seeded
  support sets of the real size (n per class, capped at the class's training size) through
  hemabench's fast engine (transform, PCA, SVM + LR + kNN sharing the distances), predicting
  the real test set (--test-rows 0; a number draws a class-proportional sample instead). At
  the largest n the plain scikit-learn pipeline (make_pipeline per classifier) is timed on
  the same support set: the table shows the ratio. Identical support sets (n at or above
  every class's size) are fitted once, as the sweep does. Projected: at the rule's cap (100
  repetitions per n) and at the repetitions the stopping rule would run at the spread of
  balanced accuracy measured over the --repeats support sets (a rough estimate from few sets).
* bm-to-blood: direct fit (250 Matek BM cells per class predicting the target's test set,
  measured) + the adapt sweep (SVM only, every grid point measured on the target).
* cell-probe: one fold = up to 1,000 L-BFGS iterations (real embeddings stop at max_iter);
  the seconds per iteration are timed on up to --probe-rows training rows and scaled linearly.
* cell-knn: one fold; timed on a --knn-rows x --test-rows block, scaled by train x test rows.
* aml-mil: one run (fold x seed x head) at ~60 epochs (early stopping on real data; up to 150),
  seconds per epoch timed on seeded bags of the real size (189 patients x ~430 cells).

Projected totals assume the sweep's independent fits spread perfectly over --workers
single-threaded processes (what `hemabench run` does locally with joblib); folds and MIL runs
are sequential. Sweep units are timed with one BLAS thread (as in a joblib worker), probe and
kNN with all threads. Peak memory = the dataset's float32 features + the largest unit's
measured working set (VmHWM growth).
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

from _common import finish, print_load, start_script  # noqa: E402
from _fewshot_scale import DEFAULT_GRID, measure_direct, measure_grid, project  # noqa: E402
from _scale import (  # noqa: E402
    AML,
    COUNTS,
    MIL_EPOCHS,
    MIL_MAX_EPOCHS,
    PROBE_FOLDS,
    PROBE_MAX_ITER,
    TRANSFER_TARGETS,
    Synthetic,
    sample_counts,
    split_counts,
)
from extraction_memory import proc_status_mb, reset_peak  # noqa: E402


def peak_growth_mb(before_mb: float) -> float:
    """The peak RSS (VmHWM) now minus ``before_mb``."""
    return max(0.0, proc_status_mb("VmHWM") - before_mb)


def measure_probe(name: str, dim: int, args) -> dict:
    from hemabench.protocols.probe import TorchLogisticRegression, probe_C

    folds, fraction = PROBE_FOLDS[name]
    data = Synthetic(COUNTS[name], dim, args.seed)
    train, _ = split_counts(COUNTS[name], fraction)
    n_train = sum(train.values())
    x, y = data.draw(sample_counts(train, min(args.probe_rows, n_train)))
    iters = args.probe_iters
    before = proc_status_mb("VmRSS")
    reset_peak()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tick = time.perf_counter()
        model = TorchLogisticRegression(C=probe_C(dim, len(train)), max_iter=iters, device="cpu").fit(x, y)
        seconds = time.perf_counter() - tick
    memory = peak_growth_mb(before) * n_train / len(x)
    per_iter = seconds / max(1, model.n_iter_)
    fold = per_iter * n_train / len(x) * PROBE_MAX_ITER
    return {"units": folds, "unit": fold, "memory_mb": memory, "measured": f"{model.n_iter_} iterations on "
            f"{len(x)} rows: {per_iter * 1000:.1f} ms/iteration"}


def measure_knn(name: str, dim: int, args) -> dict:
    from hemabench.protocols.knn import knn_predict

    folds, fraction = PROBE_FOLDS[name]
    data = Synthetic(COUNTS[name], dim, args.seed)
    train, test = split_counts(COUNTS[name], fraction)
    n_train, n_test = sum(train.values()), sum(test.values())
    x, y = data.draw(sample_counts(train, min(args.knn_rows, n_train)))
    q, _ = data.draw(sample_counts(test, min(args.test_rows, n_test)))
    before = proc_status_mb("VmRSS")
    reset_peak()
    tick = time.perf_counter()
    knn_predict(x, y, q, ks=(1, 20), device="cpu")
    seconds = time.perf_counter() - tick
    fold = seconds * (n_train / len(x)) * (n_test / len(q))
    memory = peak_growth_mb(before) * n_train / len(x)
    return {"units": folds, "unit": fold, "memory_mb": memory,
            "measured": f"{len(x)} x {len(q)} rows in {seconds:.2f} s"}


def measure_mil(dim: int, args) -> dict:
    import torch
    from mil_fold import synthetic_bags

    from hemabench.tasks import TASKS

    epochs = args.mil_epochs
    task = TASKS.get("aml-mil").with_params(max_epochs=epochs, patience=epochs + 1)
    patients, cells = (40, 40) if args.quick else (AML["patients"], AML["cells"])
    arrays, y, folds = synthetic_bags(patients, cells, dim, args.seed, 0.6, 0.2)
    tensors = [torch.from_numpy(a) for a in arrays]
    roles = {"test": np.flatnonzero(folds == 0), "val": np.flatnonzero(folds == 1), "train": np.flatnonzero(folds >= 2)}
    per_epoch = []
    before = proc_status_mb("VmRSS")
    reset_peak()
    for head in ("amil", "abmil"):
        tick = time.perf_counter()
        _, _, log, _ = task.fit_predict(head, "bench", tensors, y, roles, args.seed, AML["classes"], torch.device("cpu"))
        per_epoch.append((time.perf_counter() - tick) / log.epochs)
    unit = float(np.mean(per_epoch)) * MIL_EPOCHS
    return {"units": AML["folds"] * AML["seeds"] * AML["heads"], "unit": unit, "memory_mb": peak_growth_mb(before),
            "measured": f"{epochs} epochs per head on {patients} bags: "
                        + ", ".join(f"{h} {t:.2f} s/epoch" for h, t in zip(("amil", "abmil"), per_epoch))
                        + f"; {MIL_EPOCHS} epochs per run assumed (up to {MIL_MAX_EPOCHS}: x{MIL_MAX_EPOCHS / MIL_EPOCHS:.1f})"}


def gib(mb: float) -> float:
    return round(mb / 1024, 2)


def fewshot_rows(dim: int, args, sweeps: dict, details: dict) -> list[dict]:
    """label-efficiency per dataset and bm-to-blood per transfer target: measured grids, projected totals."""
    rows = []
    for name in [d for d in args.datasets if d in COUNTS and not args.transfer_only]:
        sweeps[name] = grid = measure_grid(name, dim, args, ("svm", "lr", "knn"), reference=not args.no_reference)
        le = project(grid)
        details[f"label-efficiency {name} {dim}"] = grid["per_n"]
        features_mb = sum(COUNTS[name].values()) * dim * 4 / 2**20
        ratio = f"; plain scikit-learn / engine at {le['largest_rows']} rows: {le['ratio']:.1f}x" if le["ratio"] else ""
        rows.append(row("label-efficiency", name, dim, le["fits"], le["serial_fixed"], args.workers,
                        features_mb + le["memory_mb"], f"every n measured, {args.repeats} support sets each{ratio}",
                        adaptive=le["serial_adaptive"], ratio=le["ratio"]))
    if args.transfer_only:  # bm-to-blood alone: its targets among --datasets (the source is always Matek BM)
        targets = [t for t in TRANSFER_TARGETS if t in args.datasets]
    else:
        targets = [t for t in TRANSFER_TARGETS if t in sweeps] if "matek-bm" in args.datasets else []
    for target in targets:
        data = Synthetic(COUNTS[target], dim, args.seed)
        test = data.draw(split_counts(COUNTS[target], 0.7)[1])
        direct = measure_direct(target, dim, args, test)
        adapt_grid = measure_grid(target, dim, args, ("svm",), test=test, reference=False)
        adapt = project(adapt_grid)
        details[f"bm-to-blood {target} {dim}"] = {"direct": direct, "adapt": adapt_grid["per_n"]}
        fixed = 100 * direct["seconds"] + adapt["serial_fixed"]
        adaptive = direct["repetitions_adaptive"] * direct["seconds"] + adapt["serial_adaptive"]
        n = sum(COUNTS[target].values()) + sum(COUNTS["matek-bm"].values())
        rows.append(row("bm-to-blood", target, dim, 100 + adapt["fits"], fixed, args.workers,
                        n * dim * 4 / 2**20 + max(direct["memory_mb"], adapt["memory_mb"]),
                        f"direct fit ({direct['rows']} BM rows) + {len(adapt_grid['per_n'])} adapt SVM fits per "
                        f"repetition, every one measured", adaptive=adaptive))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=[*COUNTS, "aml-hehr"], choices=[*COUNTS, "aml-hehr"])
    parser.add_argument("--dims", nargs="+", type=int, default=[384, 1024])
    parser.add_argument("--tasks", nargs="+", default=["fewshot", "probe", "knn", "mil"],
                        choices=["fewshot", "probe", "knn", "mil"])
    parser.add_argument("--grid", nargs="+", type=int, default=DEFAULT_GRID, help="label budgets timed (the task's)")
    parser.add_argument("--test-rows", type=int, default=0, help="test rows predicted per fit (0: the real test set)")
    parser.add_argument("--probe-rows", type=int, default=20000)
    parser.add_argument("--probe-iters", type=int, default=15, help="L-BFGS iterations timed per probe fold")
    parser.add_argument("--knn-rows", type=int, default=20000)
    parser.add_argument("--mil-epochs", type=int, default=2, help="epochs timed per MIL head")
    parser.add_argument("--repeats", type=int, default=3, help="support sets timed per n")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain scikit-learn pipeline at the largest n")
    parser.add_argument("--transfer-only", action="store_true",
                        help="few-shot: bm-to-blood on the targets in --datasets only (no label-efficiency)")
    parser.add_argument("--workers", type=int, default=2, help="sweep workers the projection assumes (cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script, no figures")
    args, info = start_script(parser, argv)
    if args.quick:
        args.dims, args.grid, args.test_rows, args.probe_rows, args.knn_rows = [16], [1, 5], 100, 500, 500
        args.probe_iters, args.mil_epochs, args.repeats = 3, 1, 2
    print_load("at start")

    rows, details = [], {}
    for dim in args.dims:
        sweeps: dict = {}
        if "fewshot" in args.tasks:
            rows += fewshot_rows(dim, args, sweeps, details)
        for name in [d for d in args.datasets if d in COUNTS]:
            features_mb = sum(COUNTS[name].values()) * dim * 4 / 2**20
            for task, fn in (("cell-probe", measure_probe), ("cell-knn", measure_knn)):
                if task.split("-")[1] in args.tasks:
                    r = fn(name, dim, args)
                    rows.append(row(task, name, dim, r["units"], r["units"] * r["unit"], 1,
                                    features_mb + r["memory_mb"], r["measured"]))
        if "aml-hehr" in args.datasets and "mil" in args.tasks:
            r = measure_mil(dim, args)
            rows.append(row("aml-mil", "aml-hehr", dim, r["units"], r["units"] * r["unit"], 1,
                            AML["patients"] * AML["cells"] * dim * 4 / 2**20 + r["memory_mb"], r["measured"]))
    print_load("at the end")
    finish(args, "protocols_at_scale", "full protocols at real scale on this machine (CPU; GPU: not measured)",
           rows, info, details=details)
    return 0


def row(task: str, dataset: str, dim: int, units: int, serial: float, workers: int, memory_mb: float,
        note: str, adaptive: float | None = None, ratio: float | None = None) -> dict:
    """One table row: ``serial`` seconds (at 100 repetitions for the sweeps; ``adaptive``: at the
    stopping rule's estimated repetitions) spread over ``workers``."""
    wall = serial / workers
    out = {"task": task, "dataset": dataset, "D": dim, "units": units, "s/unit": serial / units,
           "projected": human(wall), "projected h": hours(wall)}
    if adaptive is not None:
        out.update({"projected (rule)": human(adaptive / workers), "projected h (rule)": hours(adaptive / workers)})
    if ratio is not None:
        out["plain / engine"] = round(ratio, 2)
    return {**out, "workers": workers, "peak GiB (est.)": gib(memory_mb), "how": note}


def hours(seconds: float) -> float:
    """Hours to three significant figures: a fast machine's quick run must not round to 0."""
    return float(f"{seconds / 3600:.3g}")


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
