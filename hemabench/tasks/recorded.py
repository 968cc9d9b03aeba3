"""One recorded repetition of a few-shot sweep, with per-cell probabilities, for calibration.

The sweep itself keeps one confusion matrix per repetition (thousands of fits: per-cell
probabilities for all of them would not fit in a result file). Calibration and selective
prediction need probabilities, so one repetition at one label budget is refitted exactly as
the sweep fits it (same support set, same seeded classifiers: its confusion matrix equals
the sweep's for that repetition, which a test checks) and its test probabilities are stored
as a variant ``<clf>/n=<n>/rep<r>``. The temperature slice is drawn from training cells
OUTSIDE that support set, so it is never fitted on, and never contains test cells.
"""

from __future__ import annotations

import numpy as np

from hemabench.protocols.fewshot import fit_proba, support_set
from hemabench.results.calibration import align_proba, held_out_slice, slice_payload


def recorded_name(classifier: str, n: int, repetition: int) -> str:
    return f"{classifier}/n={n}/rep{repetition:03d}"


def recorded_variants(features: np.ndarray, labels: np.ndarray, paths: np.ndarray, perm: dict, train: np.ndarray,
                      test: np.ndarray, scored: list[str], settings: dict, seed: int,
                      classifier_settings: dict | None = None, fold: str = "test") -> dict[str, dict]:
    """``settings``: repetition, n, classifiers, slice (fraction), slice_seed (the task's ``calibration``);
    ``classifier_settings``: classifier -> keywords, as the sweep builds them; ``fold``: the split's test
    part the cells belong to (the repetition is in the variant's name)."""
    support = support_set(perm, settings["n"])
    held = held_out_slice(np.setdiff1d(train, support), labels, settings["slice_seed"], settings["slice"])
    rows = np.concatenate([test, held])
    out = {}
    for clf, (classes, proba) in fit_proba(features[support], labels[support], features[rows],
                                          tuple(settings["classifiers"]), seed, classifier_settings).items():
        proba = align_proba(proba, classes, scored)
        test_proba, held_proba = proba[:len(test)], proba[len(test):]
        out[recorded_name(clf, settings["n"], settings["repetition"])] = {
            "id": paths[test], "fold": np.full(len(test), fold), "true": labels[test],
            "pred": np.asarray(classes)[np.argmax(test_proba[:, [scored.index(str(c)) for c in classes]], axis=1)],
            "proba": test_proba,
            "calibration": slice_payload(paths[held], np.full(len(held), fold), labels[held], held_proba,
                                         settings["slice"], settings["slice_seed"])}
    return out
