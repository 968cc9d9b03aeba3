"""Cell-type classification on frozen embeddings (DinoBloom protocols 1 and 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hemabench.protocols import fit_probe, knn_predict
from hemabench.results.calibration import SLICE_FRACTION, align_proba, held_out_slice
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, per_fold

CELL_DATASETS = ("matek-bm", "matek-blood", "acevedo", "raabin", "synth-bm", "synth-blood")
CITATION = "Koch et al., DinoBloom, MICCAI 2024"


@dataclass(frozen=True)
class CellProbe(Task):
    def evaluate(self, data: TaskInput) -> Predictions:
        labels = data.records[self.label_column].to_numpy()
        features = np.asarray(data.features, dtype=np.float32)

        solver_runs, scored = [], self.result_labels(data)
        fraction, seed = self.params["calibration_slice"], self.params["calibration_seed"]

        def probe(train, rows, info=None):
            pred, proba = fit_probe(features[train], labels[train], features[rows], solver=self.params["solver"],
                                    device=data.device, info=info)  # info records non-convergence per fold
            return pred, align_proba(proba, np.unique(labels[train].astype(str)), scored)

        def fit_predict(train, test):
            info: dict = {}
            pred, proba = probe(train, test, info)
            solver_runs.append(info)
            held = held_out_slice(train, labels.astype(str), seed, fraction)  # temperature scaling: training cells only
            _, held_proba = probe(np.setdiff1d(train, held), held, {})
            return {"probe": {"pred": pred, "proba": proba, "slice": (held, held_proba, fraction, seed)}}

        out = per_fold(data, labels, fit_predict)
        out.extra["solver"] = solver_runs  # per fold: C, iterations, stopping status
        return out


@dataclass(frozen=True)
class CellKnn(Task):
    def evaluate(self, data: TaskInput) -> Predictions:
        labels = data.records[self.label_column].to_numpy()
        features = np.asarray(data.features, dtype=np.float32)
        ks = tuple(self.params["ks"])

        def fit_predict(train, test):
            preds = knn_predict(features[train], labels[train], features[test], ks=ks, device=data.device)
            return {f"k{k}": preds[k] for k in ks}

        return per_fold(data, labels, fit_predict)


# version 2: stores class probabilities and a held-out training slice per fold (calibration, temperature scaling)
TASKS.add("cell-probe", CellProbe(
    name="cell-probe", version=2, datasets=CELL_DATASETS, protocol="protocols.md section 1 (DinoBloom linear probe)",
    description="Multinomial logistic regression (lbfgs, max_iter 1000, C = M*K/100) on raw embeddings",
    main_metric="probe/balanced_accuracy", variants=("probe",),
    params={"solver": "torch", "C": "M*K/100", "max_iter": 1000, "penalty": "l2", "standardise": False,
            "calibration_slice": SLICE_FRACTION, "calibration_seed": 0},
    citation=CITATION,
))
TASKS.add("cell-knn", CellKnn(
    name="cell-knn", version=1, datasets=CELL_DATASETS, protocol="protocols.md section 2 (DinoBloom kNN)",
    description="k-nearest neighbours (k = 1 and 20, Euclidean, uniform weights) on raw embeddings",
    main_metric="k20/balanced_accuracy", variants=("k1", "k20"),
    params={"ks": [1, 20], "metric": "euclidean", "weights": "uniform"}, citation=CITATION,
))
