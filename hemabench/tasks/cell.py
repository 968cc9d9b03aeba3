"""Cell-type classification on frozen embeddings (DinoBloom protocols 1 and 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hemabench.errors import HemabenchError
from hemabench.protocols import fit_probe, knn_predict
from hemabench.protocols.probe import C_RULE
from hemabench.protocols.progress import progress_bar
from hemabench.results.calibration import SLICE_FRACTION, align_proba, held_out_slice
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, fold_indices, per_fold
from hemabench.tasks.needs import Needs
from hemabench.tasks.params import boolean, fraction, int_list, integer, one_of, positive_int, positive_number

CELL_NEEDS = Needs(frozenset({"cell-labels"}))
CITATION = "Koch et al., DinoBloom, MICCAI 2024"
# The linear probe's parameters, each passed to fit_probe (BreakHis tasks use the same probe).
PROBE_PARAMS = {"solver": "torch", "C": C_RULE, "max_iter": 1000, "standardise": False}
PROBE_RULES = {"solver": one_of("torch", "sklearn"), "C": positive_number(C_RULE, None), "max_iter": positive_int(),
               "standardise": boolean()}
PROBE_METHOD = {"model": "L2-penalised multinomial logistic regression (binomial for 2 classes), intercept "
                         "not penalised, L-BFGS as scikit-learn runs it",
                "C": "M*K/100 with M the feature dimension and K the training classes (DinoBloom's code; its "
                     "text writes n training samples for M, see docs/protocols.md#cell-probe)"}


def probe_kwargs(params: dict) -> dict:
    """The probe's parameters of a task, as fit_probe keywords."""
    return {key: params[key] for key in PROBE_PARAMS}


def probe_proba(params: dict, features: np.ndarray, labels: np.ndarray, train: np.ndarray, test_X: np.ndarray,
                scored: list[str], device: str, info: dict | None = None, on_iteration=None):
    """Fit the probe on rows ``train`` and predict ``test_X``: (labels, probabilities in ``scored`` order)."""
    pred, proba = fit_probe(features[train], labels[train], test_X, device=device, info=info,
                            on_iteration=on_iteration, **probe_kwargs(params))
    return pred, align_proba(proba, np.unique(labels[train].astype(str)), scored)


SLICE_PARAMS = {"calibration_slice": SLICE_FRACTION, "calibration_seed": 0}  # every probe task's temperature slice
SLICE_RULES = {"calibration_slice": fraction(), "calibration_seed": integer()}


@dataclass(frozen=True)
class ProbeTask(Task):
    """A task fitting the linear probe: its probe parameters (and its temperature slice's) are
    checked before anything runs."""

    param_rules = {**PROBE_RULES, **SLICE_RULES}


@dataclass(frozen=True)
class CellProbe(ProbeTask):
    def evaluate(self, data: TaskInput) -> Predictions:
        labels = data.records[self.label_column].to_numpy()
        features = np.asarray(data.features, dtype=np.float32)

        solver_runs, scored, names = [], self.result_labels(data), labels.astype(str)
        fraction, seed = self.params["calibration_slice"], self.params["calibration_seed"]

        def probe(train, rows, info):
            with progress_bar(self.params["max_iter"], f"{self.name} {data.dataset} L-BFGS", data.progress,
                              unit="iter", leave=False) as bar:  # an estimate within seconds, even on 170k cells
                return probe_proba(self.params, features, labels, train, features[rows], scored, data.device, info,
                                   lambda: bar.update(1))

        def fit_predict(train, test):
            info: dict = {}
            pred, proba = probe(train, test, info)
            solver_runs.append(info)
            held = held_out_slice(train, names, seed, fraction)  # temperature scaling: training cells only
            _, held_proba = probe(np.setdiff1d(train, held), held, {})
            return {"probe": {"pred": pred, "proba": proba, "slice": (held, held_proba, fraction, seed)}}

        out = per_fold(data, labels, fit_predict, desc=self.name)
        out.extra["solver"] = solver_runs  # per fold: C, iterations, stopping status
        return out


@dataclass(frozen=True)
class CellKnn(Task):
    param_rules = {"ks": int_list()}

    def check_params(self) -> str | None:
        main_k = int(self.main_metric.split("/")[0][1:])
        return super().check_params() or (None if main_k in self.params["ks"] else
                                          f"ks must include {main_k}, the k of the main metric {self.main_metric}")

    def evaluate(self, data: TaskInput) -> Predictions:
        labels = data.records[self.label_column].to_numpy()
        features = np.asarray(data.features, dtype=np.float32)
        ks = tuple(self.params["ks"])
        fewest = min((len(fold_indices(data, r, "train")) for r in data.rotations), default=0)
        if fewest < max(ks):  # a small dataset of one's own: say so instead of failing inside the protocol
            raise HemabenchError(f"{self.name}: k={max(ks)} needs at least {max(ks)} training images per fold; "
                                 f"{data.dataset or 'this dataset'} has {fewest}")

        def fit_predict(train, test):
            with progress_bar(len(test), f"{self.name} {data.dataset} test cells", data.progress, unit="cell",
                              leave=False) as bar:  # an estimate within seconds, even on 34k test cells
                preds = knn_predict(features[train], labels[train], features[test], ks=ks, device=data.device,
                                    on_batch=bar.update)
            return {f"k{k}": preds[k] for k in ks}

        return per_fold(data, labels, fit_predict, desc=self.name)


# version 2: stores class probabilities and a held-out training slice per fold (calibration, temperature scaling)
TASKS.add("cell-probe", CellProbe(
    name="cell-probe", version=2, needs=CELL_NEEDS, family="cell types",
    protocol="docs/protocols.md#cell-probe",
    description="Multinomial logistic regression (lbfgs, max_iter 1000, C = M*K/100) on raw embeddings",
    main_metric="probe/balanced_accuracy", variants=("probe",), params={**PROBE_PARAMS, **SLICE_PARAMS},
    method=PROBE_METHOD,
    citation=CITATION,
))
TASKS.add("cell-knn", CellKnn(
    name="cell-knn", version=2, needs=CELL_NEEDS, family="cell types",
    protocol="docs/protocols.md#cell-knn",
    description="k-nearest neighbours (k = 1 and 20, Euclidean, uniform weights) on raw embeddings",
    main_metric="k20/balanced_accuracy", variants=("k1", "k20"), params={"ks": [1, 20]},
    method={"metric": "euclidean", "weights": "uniform (ties in the vote go to the smallest class)"},
    citation=CITATION,
))
