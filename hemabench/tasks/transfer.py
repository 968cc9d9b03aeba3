"""Bone marrow -> blood transfer (Wenderoth): fit on bone-marrow cells, score on blood through a class mapping."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from hemabench.errors import HemabenchError
from hemabench.files.untrusted import load_yaml
from hemabench.paths import benchmarks_dir
from hemabench.protocols.fewshot import N_GRID, saturation_n, support_hash, support_permutations, sweep
from hemabench.protocols.kernels import engine_record
from hemabench.protocols.stopping import StoppingRule
from hemabench.results.metrics import over_repetitions
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, fold_indices
from hemabench.tasks.calibration_refit import recorded_variants
from hemabench.tasks.label_efficiency import (
    CITATION,
    METHOD,
    PARAMS,
    curve_auc_metrics,
    recorded_problem,
    stopping_record,
    sweep_rules,
    sweep_variants,
    swept_sem,
)
from hemabench.tasks.needs import Needs
from hemabench.tasks.params import checked, positive_int


@cache
def load_mapping(name: str = "bm-to-blood") -> dict:
    path = benchmarks_dir() / "mappings" / f"{name}.yaml"
    if not path.is_file():
        raise HemabenchError(f"class mapping {name!r} not found at {path}")
    return load_yaml(path, mapping=True)


def _mapping_problem(name) -> str | None:
    if isinstance(name, str) and (benchmarks_dir() / "mappings" / f"{name}.yaml").is_file():
        return None
    return f"{name!r} is not a file in benchmarks/mappings/"


MAPPING_FILE = checked("the name of a class mapping in benchmarks/mappings/", _mapping_problem)


@dataclass(frozen=True)
class Mapping:
    """One target's rules: which classes are scored, which source predictions merge into which."""

    scored: tuple[str, ...]
    merge: dict
    superclasses: dict
    drop_target: tuple[str, ...] = ()
    drop_fine: tuple[str, ...] = ()

    @classmethod
    def for_target(cls, mapping: dict, target: str) -> Mapping:
        entry = mapping["targets"].get(target)
        if entry is None:
            raise HemabenchError(f"mapping {mapping['name']!r} has no rules for target {target!r}")
        return cls(tuple(entry["scored"]), dict(entry.get("merge", {})), dict(entry.get("superclasses", {})),
                   tuple(entry.get("drop_target", ())), tuple(entry.get("drop_fine", ())))

    def fit_classes(self, source_classes) -> list[str]:
        members = {m for group in self.superclasses.values() for m in group}
        return sorted(c for c in source_classes if c in self.scored or c in self.merge or c in members)

    def map_predictions(self, pred: np.ndarray) -> np.ndarray:
        return np.asarray([self.merge.get(p, p) for p in pred])

    def scored_rows(self, records, rows: np.ndarray, label_column: str) -> np.ndarray:
        keep = records[label_column].to_numpy()[rows].astype(str)
        fine = records["fine_label"].to_numpy()[rows]
        return rows[np.isin(keep, self.scored) & ~np.isin(fine.astype(str), self.drop_fine)]


def superclass_metrics(predictions: dict, labels: list[str], superclasses: dict) -> dict[str, dict]:
    """Sensitivity of each superclass (a prediction of any member counts), per repetition."""
    out = {}
    for variant, p in predictions.items():
        if "confusions" not in p:  # a recorded repetition (per-cell probabilities): reported with calibration
            continue
        for name, members in superclasses.items():
            idx = [labels.index(m) for m in members if m in labels]
            values = []
            for confusion in np.asarray(p["confusions"]):
                total = confusion[idx].sum()
                if total:
                    values.append(float(confusion[np.ix_(idx, idx)].sum() / total))
            if values:
                out[f"{variant}/sensitivity_{name}"] = over_repetitions(values)
    return out


@dataclass(frozen=True)
class BoneMarrowToBlood(Task):
    stores_confusions = True  # thousands of repeated fits: one confusion matrix per repetition

    param_rules = {**sweep_rules(("svm",)), "source_per_class": positive_int(), "mapping": MAPPING_FILE}

    def check_params(self) -> str | None:
        return super().check_params() or recorded_problem(self.params)

    def mapping(self, dataset: str) -> Mapping:
        return Mapping.for_target(load_mapping(self.params["mapping"]), dataset)

    def result_labels(self, data: TaskInput) -> list[str]:
        return list(self.mapping(data.dataset).scored)

    def confusion_variants(self) -> set[str]:
        """The variants holding one confusion matrix per repetition (``validate`` requires exactly these)."""
        return {"direct", *(f"adapt/n={n}" for n in self.params["n_grid"])}

    def _target(self, data: TaskInput) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        mapping, p = self.mapping(data.dataset), self.params
        t_labels = data.records[self.label_column].to_numpy().astype(str)
        t_rotation = data.rotations[0]
        t_train = mapping.scored_rows(data.records, fold_indices(data, t_rotation, "train"), self.label_column)
        t_test = mapping.scored_rows(data.records, fold_indices(data, t_rotation, "test"), self.label_column)
        return t_labels, t_train, t_test, support_permutations(t_train, t_labels, p["repetitions"], p["seed"])

    def derived_extra(self, data: TaskInput) -> dict:
        """The ``extra`` numbers of the target fixed by the split and the parameters alone: ``validate``
        re-derives them from the registered split instead of reading them from the file."""
        _, _, t_test, adapt_perms = self._target(data)
        return {"auc_max_n": saturation_n(adapt_perms, tuple(self.params["n_grid"])), "n_test": int(len(t_test)),
                "support_seed": self.params["seed"]}

    def evaluate(self, data: TaskInput) -> Predictions:
        p, source = self.params, data.source
        mapping = self.mapping(data.dataset)
        labels = list(mapping.scored)
        t_labels, t_train, t_test, adapt_perms = self._target(data)
        t_rotation = data.rotations[0]
        s_labels = source.records[self.label_column].to_numpy().astype(str)
        s_train = fold_indices(source, source.rotations[0], "train")
        s_train = s_train[np.isin(s_labels[s_train], mapping.fit_classes(set(s_labels[s_train])))]
        rule = StoppingRule.from_params(p)
        common = {"seed": p["seed"], "settings": {"svm": p["svm"]}, "progress": data.progress,
                  "engine": p["engine"], "rule": rule}
        direct_perms = support_permutations(s_train, s_labels, p["repetitions"], p["seed"])
        direct = sweep(source.features, s_labels, direct_perms, data.features[t_test], t_labels[t_test], labels,
                       (p["source_per_class"],), ("svm",), map_pred=mapping.map_predictions,
                       desc=f"{self.name} {data.dataset} direct", **common)
        adapt = sweep(data.features, t_labels, adapt_perms, data.features[t_test], t_labels[t_test], labels,
                      tuple(p["n_grid"]), ("svm",), desc=f"{self.name} {data.dataset} adapt", **common)
        variants = {"direct": sweep_variants(direct)[f"svm/n={p['source_per_class']}"],
                    **sweep_variants(adapt, prefix={"svm": "adapt"})}
        ids = lambda inp: inp.records["path"].to_numpy()  # noqa: E731
        recorded = {}
        if p.get("calibration"):  # one repetition of each with per-cell probabilities (tasks/calibration_refit.py)
            cal, fold, paths = p["calibration"], t_rotation["test"][0], ids(data).astype(str)
            rep, svm = cal["repetition"], {"svm": p["svm"]}
            recorded.update(recorded_variants(
                np.asarray(source.features), s_labels, ids(source).astype(str), direct_perms[rep], s_train, t_test,
                labels, {**cal, "n": p["source_per_class"]}, p["seed"], svm, fold, stem="direct",
                target=(np.asarray(data.features), t_labels, paths), merge=mapping.merge, engine=p["engine"]))
            recorded.update(recorded_variants(np.asarray(data.features), t_labels, paths, adapt_perms[rep], t_train,
                                              t_test, labels, cal, p["seed"], svm, fold, stem=f"adapt/n={cal['n']}",
                                              engine=p["engine"]))
        return Predictions({**variants, **recorded}, extra={
            "mapping": {"name": p["mapping"], "version": load_mapping(p["mapping"])["version"],
                                                 **{k: v for k, v in vars(mapping).items()}},
            "fit_classes": sorted(set(s_labels[s_train])), "support_seed": p["seed"],
            "support_hash": {"direct": support_hash(direct_perms, ids(source)), "adapt": support_hash(adapt_perms, ids(data))},
            "effective_n": {str(n): v for n, v in adapt["effective_n"].items()},
            "auc_max_n": saturation_n(adapt_perms, tuple(p["n_grid"])), "n_test": int(len(t_test)),
            "superclasses": mapping.superclasses, **self.derived(variants, labels, {}),
            "stopping": stopping_record(rule, {v: [v] for v in variants}, variants),
            "engine": engine_record(p["engine"])})

    def derived(self, predictions: dict, labels: list[str], extra: dict) -> dict:
        return swept_sem(predictions, labels)

    def summarise(self, predictions: dict, labels: list[str], extra: dict | None = None) -> dict[str, dict]:
        extra = extra or {}
        curve = curve_auc_metrics(predictions, labels, extra.get("auc_max_n", max(self.params["n_grid"])))
        return {**curve, **superclass_metrics(predictions, labels, extra.get("superclasses", {}))}


# version 3: one repetition of direct transfer and of adaptation recorded with per-cell probabilities (calibration)
# version 4: the paper's grid (750 and 1500 dropped), repetitions stopped at a stated precision, the fast engine
# version 5: the engine's Yeo-Johnson is scikit-learn's PowerTransformer bit for bit (exact lambdas, not
#   golden-section ones within scipy's tolerance), so every engine fit sees the reference pipeline's features
# Targets: datasets with cell labels and a ``transfer_source`` (and rules in the class mapping).
NEEDS = Needs(frozenset({"cell-labels"}), split="holdout-70-30", source_split="holdout-70-30")
TASKS.add("bm-to-blood", BoneMarrowToBlood(
    name="bm-to-blood", version=6, needs=NEEDS, protocol="docs/protocols.md#bm-to-blood", family="transfer",
    description="SVM fitted on 250 bone-marrow cells per class, scored on blood datasets through a versioned "
                "class mapping (direct transfer), and fitted on n target cells per class (domain adaptation)",
    main_metric="direct/balanced_accuracy", declared_detail_variant="direct",
    variants=("direct", *(f"adapt/n={n}" for n in N_GRID)),
    params={**{k: v for k, v in PARAMS.items() if k not in ("classifiers", "lr", "knn")},
            "calibration": {**PARAMS["calibration"], "classifiers": ["svm"]}, "source_per_class": 250,
            "mapping": "bm-to-blood"},
    method={**METHOD, "classifier": "svm (the label-efficiency SVM pipeline), for direct transfer and adaptation",
            "calibration": "repetition `calibration.repetition` refitted with per-cell probabilities: direct/rep<r> "
                           "(its source support set; temperature slice from source training cells outside it; "
                           "probabilities of source classes merged by the mapping add up) and adapt/n=<n>/rep<r> "
                           "(n = `calibration.n`; slice from target training cells outside its support set)"},
    citation=CITATION,
))
