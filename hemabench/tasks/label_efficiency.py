"""Label-efficiency curves (Wenderoth): balanced accuracy against labelled samples per class."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hemabench.metrics import aggregate
from hemabench.protocols.fewshot import (
    CLASSIFIERS,
    N_GRID,
    normalised_auc,
    saturation_n,
    support_hash,
    support_permutations,
    sweep,
)
from hemabench.results.calibration import SLICE_FRACTION
from hemabench.results.scoring import expand_confusion
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, fold_indices
from hemabench.tasks.cell import CELL_DATASETS
from hemabench.tasks.recorded import recorded_variants

CITATION = "Wenderoth et al., transferable hematological cell classification"
VARIANT = re.compile(r"^(?P<clf>[^/]+)/n=(?P<n>\d+)$")


def sweep_variants(result: dict, repetitions: int, prefix: dict[str, str] | None = None) -> dict[str, dict]:
    """Predictions variants ``<clf>/n=<n>`` holding one confusion matrix per repetition."""
    folds = [f"rep{r:03d}" for r in range(repetitions)]
    return {f"{(prefix or {}).get(c, c)}/n={n}": {"fold": folds, "confusions": np.asarray(cms)}
            for (c, n), cms in result["confusions"].items()}


def balanced_accuracy_of(confusion, labels: list[str]) -> float:
    from hemabench.metrics import classification_metrics

    return classification_metrics(*expand_confusion(confusion, labels), labels)["balanced_accuracy"]


def curve_auc_metrics(predictions: dict, labels: list[str], max_n: int) -> dict[str, dict]:
    """Per classifier: the normalised area under balanced accuracy over log2(n), per repetition."""
    curves: dict[str, dict[int, list[float]]] = {}
    for variant, p in predictions.items():
        match = VARIANT.match(variant)
        if match and int(match["n"]) <= max_n:
            curves.setdefault(match["clf"], {})[int(match["n"])] = [balanced_accuracy_of(c, labels) for c in p["confusions"]]
    out = {}
    for clf, by_n in curves.items():
        ns = sorted(by_n)
        values = [normalised_auc(ns, [by_n[n][r] for n in ns]) for r in range(len(by_n[ns[0]]))]
        out[f"{clf}/balanced_accuracy_auc"] = {**aggregate(values), "ci95": [float(np.percentile(values, 2.5)),
                                                                              float(np.percentile(values, 97.5))]}
    return out


@dataclass(frozen=True)
class LabelEfficiency(Task):
    def evaluate(self, data: TaskInput) -> Predictions:
        p = self.params
        labels = data.records[self.label_column].to_numpy().astype(str)
        rotation = data.rotations[0]
        train, test = fold_indices(data, rotation, "train"), fold_indices(data, rotation, "test")
        perms = support_permutations(train, labels, p["repetitions"], p["seed"])
        result = sweep(data.features, labels, perms, data.features[test], labels[test], self.result_labels(data),
                       tuple(p["n_grid"]), tuple(p["classifiers"]), seed=p["seed"])
        recorded = recorded_variants(np.asarray(data.features), labels, data.records["path"].to_numpy().astype(str),
                                     perms[p["calibration"]["repetition"]], train, test, self.result_labels(data),
                                     p["calibration"], p["seed"]) if p.get("calibration") else {}
        return Predictions({**sweep_variants(result, p["repetitions"]), **recorded}, extra={
            "support_seed": p["seed"], "support_hash": support_hash(perms, data.records["path"].to_numpy()),
            "effective_n": {str(n): v for n, v in result["effective_n"].items()},
            "auc_max_n": saturation_n(perms, tuple(p["n_grid"])), "fits": result["fits"],
            "n_train": int(len(train)), "n_test": int(len(test))})

    def summarise(self, predictions: dict, labels: list[str], extra: dict | None = None) -> dict[str, dict]:
        max_n = (extra or {}).get("auc_max_n", max(self.params["n_grid"]))
        return curve_auc_metrics(predictions, labels, max_n)


PARAMS = {
    "n_grid": list(N_GRID), "repetitions": 100, "seed": 0, "classifiers": list(CLASSIFIERS),
    "pipeline": "Yeo-Johnson power transform with standardisation -> PCA (all components) -> classifier",
    "svm": {"kernel": "rbf", "C": 1.0, "gamma": "scale", "class_weight": "balanced", "probability": True},
    "lr": {"C": 2.5, "class_weight": "balanced", "max_iter": 10000},
    "knn": {"n_neighbors": 3, "weights": "distance"},
    "prediction": "argmax of predicted probabilities",
    "auc": "normalised area under balanced accuracy over log2(n), n up to the first n that uses every training item",
    "calibration": {"repetition": 0, "n": 50, "classifiers": ["svm", "lr"], "slice": SLICE_FRACTION, "slice_seed": 0,
                    "what": "this repetition refitted with per-cell probabilities (calibration metrics); the "
                            "temperature slice is drawn from training cells outside its support set"},
}

# version 2: one recorded repetition (n=50, SVM and LR) with per-cell probabilities, for calibration
TASKS.add("label-efficiency", LabelEfficiency(
    name="label-efficiency", version=2, datasets=CELL_DATASETS,
    protocol="protocols.md section 3 (Wenderoth label efficiency)",
    description="Balanced accuracy against n labelled cells per class (1 to 2000), SVM / LR / kNN on "
                "power-transformed, PCA-rotated embeddings, 100 seeded support sets per n",
    main_metric="svm/balanced_accuracy_auc", detail_variant="svm/n=50",
    variants=tuple(f"{c}/n={n}" for c in CLASSIFIERS for n in N_GRID),
    splits={d: "holdout-70-30" for d in CELL_DATASETS if d != "raabin"}, params=PARAMS, citation=CITATION,
))
