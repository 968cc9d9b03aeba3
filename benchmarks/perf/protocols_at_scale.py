"""What the full protocols cost at the real datasets' sizes: time each unit of work, project each task.

    python benchmarks/perf/protocols_at_scale.py [--datasets acevedo matek-blood matek-bm aml-hehr]
        [--dims 384 1024] [--max-rows 2500] [--test-rows 1000] [--repeats 1] [--workers 2]
        [--adaptive-reps 20] [--quick] [--json scale.json]

Synthetic features with the real class sizes (hard-coded below from the datasets' published
counts), cut by the registered splits (label-efficiency and transfer: stratified 70/30; probe
and kNN: Acevedo 5-fold CV, Matek 80/20; aml-mil: 5 patient folds, 3 train / 1 val / 1 test).
Features are class Gaussians in a 64-d subspace plus small isotropic noise (see Synthetic):
separable but overlapping classes, as with real embeddings. Each protocol's unit of work is timed, bounded so the
script ends in minutes, and the full task is projected from it:

* label-efficiency: one pipeline fit per (repetition, n, classifier); per n, the shared
  Yeo-Johnson + PCA fit, the test-set transform, and each classifier's fit and prediction are
  timed on the real support set (n per class, capped at the class's training size) and a
  --test-rows sample of the test set (prediction is linear in test rows). Support sets larger
  than --max-rows are not fitted: their cost is extrapolated from the largest measured ones
  (power law in the support-set size, exponent fitted on the last three measured points);
  the table says how many units were extrapolated. Fits of identical support sets (n at or
  above every class's size) are counted once, as the sweep de-duplicates them.
* bm-to-blood: one repetition = the direct fit (250 bone-marrow cells per class, predicting
  the target's test set) + the adapt sweep (SVM at every n on the target), from the same
  measurements (Matek BM's for the direct fit).
* cell-probe: one fold = up to 1,000 L-BFGS iterations (real embeddings stop at max_iter);
  the seconds per iteration are timed on up to --probe-rows training rows and scaled linearly.
* cell-knn: one fold; timed on a --knn-rows x --test-rows block, scaled by train x test rows.
* aml-mil: one run (fold x seed x head) at ~60 epochs (early stopping on real data; up to 150),
  seconds per epoch timed on seeded bags of the real size (189 patients x ~430 cells).

Projected totals assume the sweep's independent fits spread perfectly over --workers
single-threaded processes (what `hemabench run` does locally with joblib; see
benchmarks/perf/backend_speedup.py for the measured scaling); folds and MIL runs are
sequential. Sweep units are timed with one BLAS thread (as in a joblib worker), probe and kNN
with all threads. Peak memory (estimate) = the dataset's float32 features the runner holds +
the largest unit's measured working set (VmHWM growth) scaled linearly to the real unit size.

The adaptive-v2 phase (not hemabench's protocol, which is fixed at 100 repetitions): on one
dataset x D, --adaptive-reps repetitions at each small n measure the spread of balanced
accuracy over support sets; a v2 that stops once the 95% CI half-width of the mean
(1.96 x SEM) is below 0.25 points, with at least 20 repetitions, needs
R* = max(20, (1.96 s / 0.0025)^2) repetitions (capped at 100). Sizes not measured take the
largest measured n's spread (the spread shrinks with n, so this under-states the saving).
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

from _common import finish, print_figures, print_load, start_script  # noqa: E402
from _scale import (  # noqa: E402
    AML,
    COUNTS,
    MIL_EPOCHS,
    MIL_MAX_EPOCHS,
    PROBE_FOLDS,
    PROBE_MAX_ITER,
    REPETITIONS,
    SOURCE_PER_CLASS,
    TRANSFER_TARGETS,
    Synthetic,
    extrapolate,
    sample_counts,
    split_counts,
    spreads_over_support_sets,
    support_counts,
    v2_repetitions,
)
from extraction_memory import proc_status_mb, reset_peak  # noqa: E402


def peak_growth_mb(before_mb: float) -> float:
    """The peak RSS (VmHWM) now minus ``before_mb``."""
    return max(0.0, proc_status_mb("VmHWM") - before_mb)


def time_support_set(data: Synthetic, per_class: dict, test_x: np.ndarray, classifiers, seed: int) -> dict:
    """One support set through the label-efficiency pipeline, each step timed (seconds;
    predictions per test row), and the working-set growth (MB)."""
    from sklearn.decomposition import PCA

    from hemabench.protocols.fewshot import make_classifier
    from hemabench.protocols.power import YeoJohnsonStandardizer

    x, y = data.draw(per_class)
    before = proc_status_mb("VmRSS")
    reset_peak()
    out = {}
    tick = time.perf_counter()
    scaler = YeoJohnsonStandardizer().fit(x)
    pca = PCA().fit(scaler.transform(x))
    z = pca.transform(scaler.transform(x))
    out["transform"] = time.perf_counter() - tick
    tick = time.perf_counter()
    z_test = pca.transform(scaler.transform(test_x))
    out["test_transform_row"] = (time.perf_counter() - tick) / len(test_x)
    for name in classifiers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tick = time.perf_counter()
            model = make_classifier(name, seed).fit(z, y)
            out[f"{name}_fit"] = time.perf_counter() - tick
            tick = time.perf_counter()
            model.predict_proba(z_test)
            out[f"{name}_predict_row"] = (time.perf_counter() - tick) / len(test_x)
    out["memory_mb"] = peak_growth_mb(before)
    return out


def measure_sweep(name: str, dim: int, args, classifiers=("svm", "lr", "knn")) -> dict:
    """Per n of the grid: support-set size and the measured (or skipped) step times."""
    from threadpoolctl import threadpool_limits

    from hemabench.protocols.fewshot import N_GRID

    data = Synthetic(COUNTS[name], dim, args.seed)
    train, test = split_counts(COUNTS[name], 0.7)
    test_x, _ = data.draw(sample_counts(test, args.test_rows))
    largest = max(train.values())
    sizes, measured = {}, {}
    for n in N_GRID:
        m = sum(support_counts(train, n).values())
        sizes[n] = m
        if m > args.max_rows or m in measured:
            continue
        runs = []
        with threadpool_limits(1):
            for _ in range(args.repeats):
                runs.append(time_support_set(data, support_counts(train, n), test_x, classifiers, args.seed))
        measured[m] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        print(f"  {name} D={dim} n={n}: {m} rows, " + ", ".join(
            f"{k} {v:.3g}" for k, v in measured[m].items() if not k.endswith("_row")), flush=True)
        if n >= largest:
            break
    return {"sizes": sizes, "measured": measured, "n_train": sum(train.values()), "n_test": sum(test.values()),
            "saturation": next((n for n in N_GRID if n >= largest), None), "classifiers": classifiers}


def set_seconds(sweep: dict, m: int, classifiers, n_test: int) -> tuple[dict[str, float], bool]:
    """Seconds of one support set of size m per classifier (the shared transform split evenly)
    predicting n_test rows; and whether anything was extrapolated."""
    meas = sweep["measured"]

    def step(key: str) -> float:
        return extrapolate([(k, v[key]) for k, v in meas.items()], m)

    shared = step("transform") + step("test_transform_row") * n_test
    per = {c: step(f"{c}_fit") + step(f"{c}_predict_row") * n_test + shared / len(classifiers) for c in classifiers}
    return per, m not in meas


def project_label_efficiency(sweep: dict, reps: int = REPETITIONS) -> dict:
    """Units (fits), seconds per unit (mean), serial seconds, fits extrapolated, per-n seconds."""
    units = serial = extrapolated = 0
    per_n = {}
    seen_saturated = False
    for n, m in sweep["sizes"].items():
        saturated = sweep["saturation"] is not None and n >= sweep["saturation"]
        if saturated and seen_saturated:
            continue  # identical support sets: fitted once for every n at or above saturation
        seen_saturated |= saturated
        times, extra = set_seconds(sweep, m, sweep["classifiers"], sweep["n_test"])
        count = 1 if saturated else reps
        per_n[n] = {"rows": m, "fits_per_rep": len(times), "seconds_per_set": sum(times.values()),
                    "repetitions": count, "extrapolated": extra, **{f"{c} s": t for c, t in times.items()}}
        units += count * len(times)
        serial += count * sum(times.values())
        extrapolated += count * len(times) if extra else 0
    return {"units": units, "serial": serial, "extrapolated": extrapolated, "per_n": per_n}


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


def adaptive_saving(name: str, dim: int, sweep: dict, args) -> tuple[list[dict], dict]:
    """Per small n: spread of balanced accuracy over --adaptive-reps support sets, the repetitions
    an adaptive v2 would need, and the share of the projected label-efficiency time it saves."""
    from hemabench.protocols.fewshot import CLASSIFIERS

    data = Synthetic(COUNTS[name], dim, args.seed + 1)
    train, test = split_counts(COUNTS[name], 0.7)
    test_x, test_y = data.draw(sample_counts(test, args.test_rows))
    ns = [n for n in sweep["sizes"] if n <= args.adaptive_max_n]
    scores = spreads_over_support_sets(data, train, test_x, test_y, ns, args.adaptive_reps, args.seed)
    needs, rows = {}, []
    for n in ns:
        for c in CLASSIFIERS:
            s = float(np.std(scores[(c, n)], ddof=1))
            needs[(c, n)] = v2_repetitions(s)
            rows.append({"classifier": c, "n": n, "mean bal. acc. (%)": 100 * float(np.mean(scores[(c, n)])),
                         "spread over support sets (std, pt)": 100 * s, "SEM at 100 reps (pt)": 100 * s / 10,
                         "v2 repetitions": needs[(c, n)]})
    full = adaptive = 0.0
    for n, row in project_label_efficiency(sweep)["per_n"].items():
        for c in CLASSIFIERS:
            need = needs.get((c, n), needs[(c, ns[-1])]) if row["repetitions"] > 1 else 1
            full += row[f"{c} s"] * row["repetitions"]
            adaptive += row[f"{c} s"] * need
    return rows, {"seconds_v1": full, "seconds_v2": adaptive, "saving": 1 - adaptive / full, "measured_up_to_n": ns[-1]}


def gib(mb: float) -> float:
    return round(mb / 1024, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=[*COUNTS, "aml-hehr"], choices=[*COUNTS, "aml-hehr"])
    parser.add_argument("--dims", nargs="+", type=int, default=[384, 1024])
    parser.add_argument("--max-rows", type=int, default=2500, help="largest support set fitted (larger: extrapolated)")
    parser.add_argument("--test-rows", type=int, default=1000, help="test rows predicted per fit (scaled to the real)")
    parser.add_argument("--probe-rows", type=int, default=20000)
    parser.add_argument("--probe-iters", type=int, default=15, help="L-BFGS iterations timed per probe fold")
    parser.add_argument("--knn-rows", type=int, default=20000)
    parser.add_argument("--mil-epochs", type=int, default=2, help="epochs timed per MIL head")
    parser.add_argument("--repeats", type=int, default=1, help="timings per support set (median)")
    parser.add_argument("--workers", type=int, default=2, help="sweep workers the projection assumes (cores)")
    parser.add_argument("--adaptive", default="acevedo:384", metavar="DATASET:D", help="where to measure v2 ('' = skip)")
    parser.add_argument("--adaptive-reps", type=int, default=20)
    parser.add_argument("--adaptive-max-n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script, no figures")
    args, info = start_script(parser, argv)
    if args.quick:
        args.dims, args.max_rows, args.test_rows, args.probe_rows, args.knn_rows = [16], 150, 100, 500, 500
        args.probe_iters, args.mil_epochs, args.adaptive_reps, args.adaptive_max_n = 3, 1, 3, 5
        args.adaptive = f"acevedo:{args.dims[0]}"
    print_load("at start")

    rows, sweeps, details = [], {}, {}
    for dim in args.dims:
        for name in [d for d in args.datasets if d in COUNTS]:
            n = sum(COUNTS[name].values())
            features_mb = n * dim * 4 / 2**20
            sweeps[(name, dim)] = sweep = measure_sweep(name, dim, args)
            le = project_label_efficiency(sweep)
            mem = max(v["memory_mb"] for v in sweep["measured"].values())
            scale = max(m for m in sweep["sizes"].values()) / max(sweep["measured"])
            details[f"label-efficiency {name} {dim}"] = le["per_n"]
            rows.append(row("label-efficiency", name, dim, le["units"], le["serial"], args.workers,
                            features_mb + mem * scale, f"{le['extrapolated']} of {le['units']} fits extrapolated "
                            f"(support sets > {args.max_rows} rows)"))
            for task, fn in (("cell-probe", measure_probe), ("cell-knn", measure_knn)):
                r = fn(name, dim, args)
                rows.append(row(task, name, dim, r["units"], r["units"] * r["unit"], 1, features_mb + r["memory_mb"],
                                r["measured"]))
        if "matek-bm" in args.datasets:
            source = sweeps[("matek-bm", dim)]
            src_train, _ = split_counts(COUNTS["matek-bm"], 0.7)
            m_direct = sum(support_counts(src_train, SOURCE_PER_CLASS).values())
            for target in [t for t in TRANSFER_TARGETS if (t, dim) in sweeps]:
                tgt = sweeps[(target, dim)]
                direct, _ = set_seconds(source, m_direct, ("svm",), tgt["n_test"])
                adapt = project_label_efficiency({**tgt, "classifiers": ("svm",)}, reps=1)
                unit = direct["svm"] + adapt["serial"]
                n = sum(COUNTS[target].values()) + sum(COUNTS["matek-bm"].values())
                rows.append(row("bm-to-blood", target, dim, REPETITIONS, REPETITIONS * unit, args.workers,
                                n * dim * 4 / 2**20, f"1 repetition = direct fit ({m_direct} BM rows, extrapolated "
                                f"from Matek BM) + {len(adapt['per_n'])} adapt fits"))
        if "aml-hehr" in args.datasets:
            r = measure_mil(dim, args)
            rows.append(row("aml-mil", "aml-hehr", dim, r["units"], r["units"] * r["unit"], 1,
                            AML["patients"] * AML["cells"] * dim * 4 / 2**20 + r["memory_mb"], r["measured"]))

    extra = {"details": details}
    if args.adaptive:
        name, dim = args.adaptive.split(":")
        if (name, int(dim)) in sweeps:
            v2_rows, v2 = adaptive_saving(name, int(dim), sweeps[(name, int(dim))], args)
            print_figures(v2_rows, f"adaptive v2 (stop at 95% CI half-width < 0.25 pt, >= 20 reps), "
                          f"{name} D={dim}, {args.adaptive_reps} repetitions per n")
            print(f"label-efficiency {name} D={dim}: v1 {v2['seconds_v1'] / 3600:.2f} h serial, v2 "
                  f"{v2['seconds_v2'] / 3600:.2f} h: saves {100 * v2['saving']:.0f}% (spread beyond n="
                  f"{v2['measured_up_to_n']} taken as at n={v2['measured_up_to_n']})", flush=True)
            extra.update(adaptive=v2, adaptive_rows=v2_rows)
    print_load("at the end")
    finish(args, "protocols_at_scale", "full protocols at real scale on this machine (CPU; GPU: not measured)",
           rows, info, **extra)
    return 0


def row(task: str, dataset: str, dim: int, units: int, serial: float, workers: int, memory_mb: float,
        note: str) -> dict:
    wall = serial / workers
    return {"task": task, "dataset": dataset, "D": dim, "units": units, "s/unit": serial / units,
            "projected": human(wall), "projected h": round(wall / 3600, 3), "workers": workers,
            "peak GiB (est.)": gib(memory_mb), "how": note}


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
