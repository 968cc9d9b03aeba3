"""Task ``robustness``: does the encoder hold up when the smear does not?

On a capped, class-stratified sample of one rotation's test cells, each cell is embedded
clean and under every acquisition perturbation (family x severity, ``hemabench.images.perturb``);
the runner does that in the embeddings stage and hands the features over as
``TaskInput.views``, so this module never sees an image. The cell probe (DinoBloom's, as in
``cell-probe``) is fitted once on the rotation's clean training cells and predicts the
clean and every perturbed copy of the test cells. Predictions per variant (``clean``,
``<family>-s<k>`` with the per-cell cosine of clean vs perturbed embedding) are all
``validate`` needs: robustness_scores.py derives the cosines, drops and normalised areas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hemabench.errors import HemabenchError
from hemabench.images.perturb import CONTROL, FAMILIES, LEVELS, PERTURBATION_VERSION, SEVERITIES
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, ViewRequest, fold_indices
from hemabench.tasks.cell import CELL_NEEDS, PROBE_METHOD, PROBE_PARAMS, PROBE_RULES, probe_proba
from hemabench.tasks.params import checked, choice_list, int_list, integer, one_of
from hemabench.tasks.robustness_scores import CLEAN, SUMMARY, robustness_scores, view_variant


def round_robin_counts(counts: dict[str, int], cap: int) -> dict[str, int]:
    """Per-class shares of at most ``cap`` cells taken one per class in turn (classes in sorted
    order), so every class keeps a share as equal as its cells allow."""
    taken, left = dict.fromkeys(sorted(counts), 0), min(cap, sum(counts.values()))
    while left:
        for c in taken:
            if left and taken[c] < counts[c]:
                taken[c] += 1
                left -= 1
    return {c: n for c, n in taken.items() if counts[c]}


def capped_rows(rows: np.ndarray, labels: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """At most ``cap`` of ``rows``: each class's ``round_robin_counts`` share, its first cells in a
    seeded order; returned sorted."""
    order = rows[np.random.default_rng(seed).permutation(len(rows))]
    classes, sizes = np.unique(labels[order].astype(str), return_counts=True)
    shares = round_robin_counts(dict(zip(classes.tolist(), sizes.tolist())), cap)
    chosen = [order[labels[order].astype(str) == c][:n] for c, n in shares.items()]
    return np.sort(np.concatenate(chosen)).astype(int) if chosen else np.zeros(0, dtype=int)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (1 for two zero rows, 0 for one)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    both = (na > 0) & (nb > 0)
    out = np.where((na == 0) & (nb == 0), 1.0, 0.0)
    out[both] = dot[both] / (na[both] * nb[both])
    return np.clip(out, -1.0, 1.0)


@dataclass(frozen=True)
class Robustness(Task):
    scores_a_sample: ClassVar[bool] = True  # capped test cells: validate checks their per-class counts

    def serves(self, spec) -> bool:
        """Real cell images only: perturbing a procedurally drawn cell says nothing about a lab."""
        return not spec.synthetic and super().serves(spec)

    param_rules = {"families": choice_list(FAMILIES),
                   "severities": int_list(1, LEVELS, increasing=True).said(f"increasing integers from 1 to {LEVELS}"),
                   "max_test_cells": integer(2), "seed": integer(),
                   "perturbation_version": checked(f"{PERTURBATION_VERSION}", lambda v: None if one_of(
                       PERTURBATION_VERSION).accepts(v) else f"{v!r} is not the installed perturbations' version "
                       f"{PERTURBATION_VERSION} (hemabench/images/perturb.py)"),
                   **PROBE_RULES}

    def tested_counts(self, counts: dict[str, int]) -> dict[str, int]:
        return round_robin_counts(counts, self.params["max_test_cells"])

    def views(self) -> tuple[tuple[str, int], ...]:
        return tuple((f, s) for f in self.params["families"] for s in self.params["severities"])

    def view_request(self, data: TaskInput) -> ViewRequest:
        if not data.rotations:
            raise HemabenchError(f"{self.name}: the split of {data.dataset or 'this dataset'} has no rotation")
        labels = data.records[self.label_column].astype(str).to_numpy()
        test = fold_indices(data, data.rotations[0], "test")
        rows = capped_rows(test, labels, self.params["max_test_cells"], self.params["seed"])
        return ViewRequest(rows, self.views())

    def evaluate(self, data: TaskInput) -> Predictions:
        if data.views is None or data.view_rows is None:
            raise HemabenchError(f"{self.name} needs perturbed views of the test cells (the runner supplies them)")
        rotation = data.rotations[0]
        labels = data.records[self.label_column].to_numpy()
        features = np.asarray(data.features, dtype=np.float32)
        train, rows = fold_indices(data, rotation, "train"), np.asarray(data.view_rows, dtype=int)
        views = self.views()
        stacked = np.concatenate([features[rows]] + [np.asarray(data.views[v], dtype=np.float32) for v in views])
        info: dict = {}
        pred, _ = probe_proba(self.params, features, labels, train, stacked, self.result_labels(data), data.device,
                              info)
        n, base = len(rows), {"id": data.records["path"].to_numpy()[rows].astype(str),
                              "fold": np.full(len(rows), rotation["test"][0], dtype=object).astype(str),
                              "true": labels[rows].astype(str)}
        variants = {CLEAN: {**base, "pred": np.asarray(pred[:n]).astype(str)}}
        for i, (family, severity) in enumerate(views, start=1):
            cosine = cosine_rows(features[rows], data.views[family, severity])
            variants[view_variant(family, severity)] = {**base, "pred": np.asarray(pred[i * n:(i + 1) * n]).astype(str),
                                                        "cosine": cosine}  # unrounded: 1 - cos may be 1e-6
        return Predictions(variants, extra={"solver": [info], "n_train": int(len(train)), "n_test": int(n),
                                            "perturbations": perturbation_table(self.params["families"])})

    def summarise(self, predictions: dict, labels: list[str], extra: dict | None = None) -> dict[str, dict]:
        return robustness_scores(predictions, labels, self.params["families"], self.params["severities"], CONTROL,
                                 seed=self.params["seed"])


def perturbation_table(families) -> dict:
    """The parameter values behind each severity, recorded with every result."""
    return {"version": PERTURBATION_VERSION, "families": {f: SEVERITIES[f] for f in families}}


TASKS.add("robustness", Robustness(
    name="robustness", version=1, needs=CELL_NEEDS,
    protocol="docs/robustness.md#what-is-measured",
    description="Cell probe fitted on clean training cells, scored on capped test cells under 6 acquisition "
                "perturbations x 5 severities (stain, illumination, defocus, noise, JPEG; geometric control): "
                "cosine clean vs perturbed, balanced accuracy drop, normalised area under accuracy vs severity",
    main_metric=f"{SUMMARY}/normalised_auc", declared_detail_variant=CLEAN, variants=(CLEAN,),
    params={"families": list(FAMILIES), "severities": list(range(1, LEVELS + 1)), "max_test_cells": 1000, "seed": 0,
            "perturbation_version": PERTURBATION_VERSION, **PROBE_PARAMS},
    method={**PROBE_METHOD, "cells": "one rotation's test cells (the first), capped at max_test_cells round-robin "
                                     "over classes in a seeded order; the probe is fitted on its clean training cells",
            "perturbations": "hemabench/images/perturb.py, applied to the decoded image before the encoder's preprocessing"},
    citation="hemabench (after THUNDER's invariance, WBCBench 2026's severities, PathoROB)",
))
