"""One recorded repetition of a few-shot sweep, with per-cell probabilities, for calibration.

The sweep itself keeps one confusion matrix per repetition (thousands of fits: per-cell
probabilities for all of them would not fit in a result file). Calibration and selective
prediction need probabilities, so one repetition at one label budget is refitted exactly as
the sweep fits it (same support set, same seeded classifiers: its confusion matrix equals
the sweep's for that repetition, which a test checks) and its test probabilities are stored
as a variant ``<clf>/n=<n>/rep<r>``. The temperature slice is drawn from training cells
OUTSIDE that support set, so it is never fitted on, and never contains test cells.

Transfer (bm-to-blood) records its direct fit the same way: support set and slice come from
the source's training cells, test cells from the target, and a class mapping merges the
source classes' probabilities into the scored target classes (their sum, as predictions merge).
"""

from __future__ import annotations

import numpy as np

from hemabench.protocols.fewshot import fit_proba, support_set
from hemabench.results.calibration import align_proba, held_out_slice, slice_payload
from hemabench.tasks.params import Rule, choice_list, fields, fraction, integer, optional, positive_int


def calibration_rule(classifiers) -> Rule:
    """A task's ``calibration`` settings (null: no repetition recorded with probabilities); that the
    repetition is one every n has is the task's check (:func:`repetition_problem`)."""
    return optional(fields({"repetition": integer(0), "n": positive_int(), "classifiers": choice_list(classifiers),
                            "slice": fraction(), "slice_seed": integer()}))


def repetition_problem(settings, repetitions: int) -> str | None:
    """Why the recorded repetition is not one of the first ``repetitions`` (those every n has), or None."""
    rep = (settings or {}).get("repetition", 0)
    if rep < repetitions:
        return None
    return f"calibration.repetition must be one of the first {repetitions} repetitions (every n has them: " \
           f"0 to {repetitions - 1}), got {rep!r}"


def recorded_variants(features: np.ndarray, labels: np.ndarray, paths: np.ndarray, perm: dict, train: np.ndarray,
                      test: np.ndarray, scored: list[str], settings: dict, seed: int,
                      classifier_settings: dict | None = None, fold: str = "test", target: tuple | None = None,
                      merge: dict | None = None, stem: str | None = None, engine: str = "fast") -> dict[str, dict]:
    """``settings``: repetition, n, classifiers, slice (fraction), slice_seed (the task's ``calibration``);
    ``classifier_settings``: classifier -> keywords, as the sweep builds them; ``fold``: the split's test
    part the cells belong to (the repetition is in the variant's name). ``target``: (features, labels,
    paths) that ``test`` indexes when the test cells are another dataset's; ``merge``: fitted class ->
    scored class; ``stem``: the variant's name before ``/rep<r>`` (default ``<clf>/n=<n>``); ``engine``: the sweep's."""
    t_features, t_labels, t_paths = target or (features, labels, paths)
    support = support_set(perm, settings["n"])
    held = held_out_slice(np.setdiff1d(train, support), labels, settings["slice_seed"], settings["slice"])
    mapped = np.vectorize(lambda c: (merge or {}).get(str(c), str(c)), otypes=[object])
    out = {}
    for clf, (classes, proba) in fit_proba(features[support], labels[support],
                                          np.concatenate([t_features[test], features[held]]),
                                          tuple(settings["classifiers"]), seed, classifier_settings, engine).items():
        pred = mapped(np.asarray(classes)[np.argmax(proba[:len(test)], axis=1)])  # as the sweep predicts
        proba = align_proba(proba, mapped(np.asarray(classes)), scored)
        name = "{}/rep{:03d}".format(stem or f"{clf}/n={settings['n']}", settings["repetition"])
        out[name] = {
            "id": t_paths[test], "fold": np.full(len(test), fold), "true": t_labels[test], "pred": pred.astype(str),
            "proba": proba[:len(test)],
            "calibration": slice_payload(paths[held], np.full(len(held), fold), mapped(labels[held]), proba[len(test):],
                                         fraction=settings["slice"], seed=settings["slice_seed"])}
    return out
