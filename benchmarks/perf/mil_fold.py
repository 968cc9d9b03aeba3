"""Time one fold (one run) of the AML attention-MIL protocol, per head, at the real and a small size.

Why: aml-mil trains 5 rotations x 3 seeds = 15 runs per head, so the time of one run sets
the cost of the task (and whether the demo can afford it). One run is exactly what the
task does per rotation and seed: ``AmlMil.fit_predict`` (seeded head, SGD with early
stopping on the validation fold, best epoch restored, test-fold prediction, with the task's
``cpu_threads`` on CPU), on seeded synthetic bags:

* real : 189 patients x ~430 cells (215-645, seeded per patient) x 384-d (aml-hehr with a ViT-S)
* small: 40 patients x ~40 cells x 78-d (synth-aml with the handcrafted encoder)

Cells are standard-normal; a seeded 20% of each patient's cells is shifted along its class's
unit direction by 0.6 (real) / 2.0 (small) noise standard deviations: a weak signal, so that
early stopping ends a run near epoch 60 as on the real data (not at max_epochs). Folds: 3 train
/ 1 validation / 1 test, stratified by class. Reports the median seconds per fold over
--repeats (same seed each time, so every repeat trains the same epochs), epochs run, the
best epoch, seconds per epoch and the test weighted F1 / balanced accuracy, so figures from
different machines are comparable.

    python benchmarks/perf/mil_fold.py [--shapes real small] [--heads amil abmil] [--device auto|cpu|cuda]
        [--repeats 3] [--max-epochs N] [--patience N] [--cpu-threads N] [--json mil.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import add_json_option, finish, machine, machine_line, median_seconds  # noqa: E402

from hemabench.compute.device import resolve_device  # noqa: E402
from hemabench.protocols.mil import HEAD_NAMES  # noqa: E402
from hemabench.results.metrics import classification_metrics  # noqa: E402
from hemabench.tasks import TASKS, aml_mil  # noqa: E402

# name -> (patients, mean cells per patient, feature dimension, class shift of a marked cell in noise std units);
# the shifts give a weak signal: at 150 max epochs / patience 20, early stopping near epoch 60 (real) / 85 (small)
# and a test weighted F1 around 0.3-0.5, as on the real data
SHAPES = {"real": (189, 430, 384, 0.6), "small": (40, 40, 78, 2.0)}
N_CLASSES, N_FOLDS = 5, 5


def synthetic_bags(patients: int, cells: int, dim: int, seed: int, signal: float, fraction: float):
    """(bags as float32 arrays, class index per patient, fold per patient)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(patients) % N_CLASSES)
    folds = np.empty(patients, dtype=np.int64)
    for c in range(N_CLASSES):  # stratified: each class dealt round-robin over the folds
        members = rng.permutation(np.flatnonzero(labels == c))
        folds[members] = (np.arange(len(members)) + c) % N_FOLDS
    directions = rng.standard_normal((N_CLASSES, dim)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)  # unit: signal is in noise std units
    sizes = rng.integers(cells // 2, cells + cells // 2 + 1, size=patients)
    bags = []
    for label, size in zip(labels, sizes):
        x = rng.standard_normal((size, dim), dtype=np.float32)
        marked = rng.random(size) < fraction
        x[marked] += signal * directions[label]
        bags.append(x)
    return bags, labels, folds


def time_fold(task, head: str, tensors, y, roles, seed: int, device: torch.device, repeats: int, label: str):
    """Median seconds of one run (``AmlMil.fit_predict``), every time, and the last run's
    test probabilities and training log."""
    out = {}

    def fold():
        out["proba"], _, out["log"], _ = task.fit_predict(head, "bench", tensors, y, roles, seed, N_CLASSES, device)
        if device.type == "cuda":
            torch.cuda.synchronize()

    warmup = 1 if device.type == "cuda" else 0  # CUDA context and kernels outside the timing
    median, times = median_seconds(fold, repeats, warmup=warmup, label=label)
    return median, times, out["proba"], out["log"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--heads", nargs="+", choices=list(HEAD_NAMES), default=list(HEAD_NAMES))
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per (shape, head); median reported")
    parser.add_argument("--max-epochs", type=int, default=None, help="override the task's max_epochs (150)")
    parser.add_argument("--patience", type=int, default=None, help="override the task's patience (20)")
    parser.add_argument("--cpu-threads", type=int, default=None, help="threads per CPU fit (default: the task's, hemabench.tasks.aml_mil.CPU_THREADS = 1)")
    parser.add_argument("--signal", type=float, default=None,
                        help="shift of a marked cell along its class direction (default: per shape, 0.6 / 2.0)")
    parser.add_argument("--fraction", type=float, default=0.2, help="fraction of a bag's cells that are marked")
    parser.add_argument("--seed", type=int, default=0)
    add_json_option(parser)
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info), flush=True)

    overrides = {k: v for k, v in (("max_epochs", args.max_epochs), ("patience", args.patience)) if v is not None}
    task = TASKS.get("aml-mil").with_params(**overrides)
    if args.cpu_threads is not None:  # an execution setting (results record it in extra.cpu_threads)
        aml_mil.CPU_THREADS = args.cpu_threads
    device = resolve_device(args.device)
    p = task.params
    print(f"aml-mil run: max_epochs {p['max_epochs']}, patience {p['patience']}, bags_per_step "
          f"{p['bags_per_step']}, cpu_threads {aml_mil.CPU_THREADS}; device {device}", flush=True)
    class_names = [str(c) for c in range(N_CLASSES)]
    rows = []
    for shape in args.shapes:
        patients, cells, dim, signal = SHAPES[shape]
        signal = signal if args.signal is None else args.signal
        arrays, y, folds = synthetic_bags(patients, cells, dim, args.seed, signal, args.fraction)
        tensors = [torch.from_numpy(a).to(device) for a in arrays]
        roles = {"test": np.flatnonzero(folds == 0), "val": np.flatnonzero(folds == 1),
                 "train": np.flatnonzero(folds >= 2)}
        sizes = np.array([len(a) for a in arrays])
        print(f"{shape}: {patients} patients x {sizes.mean():.0f} cells ({sizes.min()}-{sizes.max()}) x {dim}-d, "
              f"train/val/test {len(roles['train'])}/{len(roles['val'])}/{len(roles['test'])}", flush=True)
        for head in args.heads:
            median, times, proba, log = time_fold(task, head, tensors, y, roles, args.seed, device, args.repeats,
                                                  f"{shape} {head} fold")
            test = roles["test"]
            scores = classification_metrics(y[test].astype(str), proba.argmax(axis=1).astype(str), class_names)
            rows.append({"shape": shape, "head": head, "device": str(device), "s/fold (median)": median,
                         "epochs": log.epochs, "best epoch": log.best_epoch, "s/epoch": median / log.epochs,
                         "test weighted F1": float(scores["weighted_f1"]),
                         "test bal. acc.": float(scores["balanced_accuracy"]),
                         "times": [round(t, 3) for t in times]})
        del tensors
    finish(args, "mil_fold", "aml-mil: seconds per fold (one run of one head)", rows, info,
           task_params={**{k: p[k] for k in ("max_epochs", "patience", "bags_per_step", "lr")},
                        "cpu_threads": aml_mil.CPU_THREADS},
           shapes={s: {**dict(zip(("patients", "mean_cells", "dim", "signal"), SHAPES[s])),
                       **({"signal": args.signal} if args.signal is not None else {})} for s in args.shapes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
