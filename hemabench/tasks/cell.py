"""Cell-type classification on frozen embeddings (DinoBloom protocols 1 and 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hemabench.errors import HemabenchError
from hemabench.protocols import fit_probe, knn_predict
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, fold_indices, per_fold
from hemabench.tasks.needs import Needs

CELL_NEEDS = Needs(frozenset({"cell-labels"}))
CITATION = "Koch et al., DinoBloom, MICCAI 2024"


@dataclass(frozen=True)
class CellProbe(Task):
    def evaluate(self, data: TaskInput) -> Predictions:
        labels = data.records[self.label_column].to_numpy()
        features = np.asarray(data.features, dtype=np.float32)

        solver_runs = []

        def fit_predict(train, test):
            info: dict = {}
            pred, _ = fit_probe(features[train], labels[train], features[test], solver=self.params["solver"],
                                device=data.device, info=info)  # info records non-convergence per fold
            solver_runs.append(info)
            return {"probe": pred}

        out = per_fold(data, labels, fit_predict, desc=self.name)
        out.extra["solver"] = solver_runs  # per fold: C, iterations, stopping status
        return out


@dataclass(frozen=True)
class CellKnn(Task):
    def evaluate(self, data: TaskInput) -> Predictions:
        labels = data.records[self.label_column].to_numpy()
        features = np.asarray(data.features, dtype=np.float32)
        ks = tuple(self.params["ks"])
        fewest = min((len(fold_indices(data, r, "train")) for r in data.rotations), default=0)
        if fewest < max(ks):  # a small dataset of one's own: say so instead of failing inside the protocol
            raise HemabenchError(f"{self.name}: k={max(ks)} needs at least {max(ks)} training images per fold; "
                                 f"{data.dataset or 'this dataset'} has {fewest}")

        def fit_predict(train, test):
            preds = knn_predict(features[train], labels[train], features[test], ks=ks, device=data.device)
            return {f"k{k}": preds[k] for k in ks}

        return per_fold(data, labels, fit_predict, desc=self.name)


TASKS.add("cell-probe", CellProbe(
    name="cell-probe", version=1, datasets=CELL_NEEDS.registered(), needs=CELL_NEEDS, protocol="protocols.md section 1 (DinoBloom linear probe)",
    description="Multinomial logistic regression (lbfgs, max_iter 1000, C = M*K/100) on raw embeddings",
    main_metric="probe/balanced_accuracy", variants=("probe",),
    params={"solver": "torch", "C": "M*K/100", "max_iter": 1000, "penalty": "l2", "standardise": False},
    citation=CITATION,
))
TASKS.add("cell-knn", CellKnn(
    name="cell-knn", version=1, datasets=CELL_NEEDS.registered(), needs=CELL_NEEDS, protocol="protocols.md section 2 (DinoBloom kNN)",
    description="k-nearest neighbours (k = 1 and 20, Euclidean, uniform weights) on raw embeddings",
    main_metric="k20/balanced_accuracy", variants=("k1", "k20"),
    params={"ks": [1, 20], "metric": "euclidean", "weights": "uniform"}, citation=CITATION,
))
