"""Time scoring a large result from its stored predictions, as ``hemabench validate`` recomputes it.

    python benchmarks/perf/score_result.py [--samples 200000] [--variants 3] [--classes 21]
        [--folds 5] [--patients 0] [--proba] [--n-boot 1000] [--repeats 3] [--json score.json]

Builds a seeded predictions payload (``--variants`` variants of ``--samples`` test samples in
``--folds`` unequal folds, ``--classes`` classes, ~80% correct; with ``--patients P`` each
sample belongs to one of P patients per fold, with ``--proba`` it stores class
probabilities) and times ``score_predictions`` (every metric, every interval: the
fold-mean bootstrap redrawing test units within folds). Prints the payload's JSON size, the
median seconds and seconds per MB, so "a 50 MB result validates in under a minute" can be
checked on the machine at hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import finish, median_seconds, start_script  # noqa: E402

from hemabench.results.scoring import score_predictions  # noqa: E402


def payload(samples: int, variants: int, classes: int, folds: int, patients: int, proba: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = [f"C{k:02d}" for k in range(classes)]
    sizes = rng.multinomial(samples, np.linspace(1, 2, folds) / np.linspace(1, 2, folds).sum())
    fold = np.repeat([f"fold{i}" for i in range(folds)], sizes)
    true = rng.integers(0, classes, samples)
    out = {}
    for v in range(variants):
        pred = np.where(rng.random(samples) < 0.8, true, rng.integers(0, classes, samples))
        p = {"id": [f"img/{i:07d}.png" for i in range(samples)], "fold": fold.tolist(),
             "true": np.asarray(labels)[true].tolist(), "pred": np.asarray(labels)[pred].tolist()}
        if patients:
            p["group"] = np.char.add(fold.astype(str), np.char.add("/P", rng.integers(0, patients, samples).astype(str))).tolist()
        if proba:
            scores = rng.dirichlet(np.ones(classes), samples)
            scores[np.arange(samples), pred] += 1.0
            p["proba"] = np.round(scores / scores.sum(axis=1, keepdims=True), 6).tolist()
        out[f"v{v}"] = p
    return out, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--patients", type=int, default=0, help="patients per fold (0: no patient column)")
    parser.add_argument("--proba", action="store_true", help="store class probabilities (ROC/PR AUC intervals)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args, info = start_script(parser, argv)
    predictions, labels = payload(args.samples, args.variants, args.classes, args.folds, args.patients, args.proba)
    megabytes = len(json.dumps(predictions)) / 1e6
    median, times = median_seconds(lambda: score_predictions(predictions, labels, "v0", n_boot=args.n_boot),
                                   args.repeats)
    rows = [{"samples": args.samples, "variants": args.variants, "classes": args.classes, "patients": args.patients,
             "proba": args.proba, "json MB": round(megabytes, 2), "median s": round(median, 3),
             "s per MB": round(median / megabytes, 4), "times": " ".join(f"{t:.3f}" for t in times)}]
    finish(args, "score_result", "scoring every metric and interval of one result", rows, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
