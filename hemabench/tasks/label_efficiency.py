"""Label-efficiency curves (Wenderoth): balanced accuracy against labelled samples per class."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hemabench.protocols.fewshot import (
    CLASSIFIERS,
    ENGINES,
    N_GRID,
    REFERENCE_SETTINGS,
    normalised_auc,
    saturation_n,
    settings_problem,
    support_hash,
    support_permutations,
    sweep,
)
from hemabench.protocols.kernels import engine_record
from hemabench.protocols.stopping import DEFAULT_BLOCK, DEFAULT_MINIMUM, DEFAULT_PRECISION, StoppingRule
from hemabench.results.calibration import SLICE_FRACTION
from hemabench.results.metrics import over_repetitions
from hemabench.results.scoring import expand_confusion
from hemabench.tasks.base import TASKS, Predictions, Task, TaskInput, fold_indices
from hemabench.tasks.calibration_refit import calibration_rule, recorded_variants, repetition_problem
from hemabench.tasks.needs import Needs
from hemabench.tasks.params import checked, choice_list, fraction, int_list, integer, one_of, optional, positive_int

CITATION = "Wenderoth et al., transferable hematological cell classification"
VARIANT = re.compile(r"^(?P<clf>[^/]+)/n=(?P<n>\d+)$")


def sweep_variants(sweep: dict, prefix: dict[str, str] | None = None) -> dict[str, dict]:
    """Predictions variants ``<clf>/n=<n>`` holding one confusion matrix per repetition (as many
    as the stopping rule ran at that n)."""
    return {f"{(prefix or {}).get(c, c)}/n={n}": {"fold": [f"rep{r:03d}" for r in range(len(cms))],
                                                  "confusions": np.asarray(cms)}
            for (c, n), cms in sweep["confusions"].items()}


def stopping_record(rule: StoppingRule, groups: dict[str, list[str]], variants: dict) -> dict:
    """``extra.stopping``: the rule and, per group of variants fitted on the same support sets
    (one n), the repetitions run; ``hemabench validate`` re-derives them from the confusions."""
    return {"rule": rule.describe(), "groups": {name: {"repetitions": len(variants[members[0]]["confusions"]),
                                                       "variants": members} for name, members in groups.items()}}


def balanced_accuracy_of(confusion, labels: list[str]) -> float:
    from hemabench.results.metrics import classification_metrics

    return classification_metrics(*expand_confusion(confusion, labels), labels)["balanced_accuracy"]


def repetition_sem(variants: dict, labels: list[str]) -> dict[str, dict[str, float]]:
    """Per variant (a classifier at one n): the standard error of the mean balanced accuracy
    over the repetitions, std (ddof 1) / sqrt(R). It says how precisely the repetitions pin the
    mean down (the 95% CI half-width of the mean is about 1.96 x SEM), not how much one
    support set's score varies (that spread is the metric's ``std``)."""
    out = {}
    for variant, p in variants.items():
        values = [balanced_accuracy_of(c, labels) for c in p["confusions"]]
        sem = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        out[variant] = {"balanced_accuracy": sem, "repetitions": len(values)}
    return out


def swept_sem(predictions: dict, labels: list[str]) -> dict:
    """``extra.repetition_sem`` of the variants holding one confusion matrix per repetition."""
    return {"repetition_sem": repetition_sem({v: p for v, p in predictions.items() if "confusions" in p}, labels)}


def curve_auc_metrics(predictions: dict, labels: list[str], max_n: int) -> dict[str, dict]:
    """Per classifier: the normalised area under balanced accuracy over log2(n), per repetition,
    over the repetitions every n has (the first min over n of the counts: the stopping rule runs
    more at the noisy small n; with a fixed count that is every repetition)."""
    curves: dict[str, dict[int, list[float]]] = {}
    for variant, p in predictions.items():
        match = VARIANT.match(variant)
        if match and int(match["n"]) <= max_n:
            curves.setdefault(match["clf"], {})[int(match["n"])] = [balanced_accuracy_of(c, labels) for c in p["confusions"]]
    out = {}
    for clf, by_n in curves.items():
        ns = sorted(by_n)
        common = min(len(by_n[n]) for n in ns)
        values = [normalised_auc(ns, [by_n[n][r] for n in ns]) for r in range(common)]
        out[f"{clf}/balanced_accuracy_auc"] = over_repetitions(values)
    return out


def sweep_rules(classifiers) -> dict:
    """The rules of a few-shot sweep's parameters, with the settings of each of ``classifiers``."""
    return {"n_grid": int_list(increasing=True), "repetitions": positive_int(), "seed": integer(0),
            "precision": optional(fraction()).said("a 95% CI half-width in (0, 1) (balanced accuracy) or null (fixed)"),
            "min_repetitions": positive_int(), "repetition_block": positive_int(), "engine": one_of(*ENGINES),
            **{name: checked(f"{name} keywords", lambda v, name=name: settings_problem(name, v)) for name in classifiers},
            "calibration": calibration_rule(classifiers)}


def recorded_problem(params: dict) -> str | None:
    """The recorded repetition must be one that every n has (the stopping rule's minimum)."""
    return repetition_problem(params["calibration"], StoppingRule.from_params(params).minimum)


@dataclass(frozen=True)
class LabelEfficiency(Task):
    stores_confusions = True  # thousands of repeated fits: one confusion matrix per repetition

    param_rules = {**sweep_rules(CLASSIFIERS), "classifiers": choice_list(CLASSIFIERS)}

    def check_params(self) -> str | None:
        main = self.main_metric.split("/")[0]
        if problem := super().check_params():
            return problem
        if main not in self.params["classifiers"]:
            return f"classifiers must include {main!r}, the classifier of the main metric"
        return recorded_problem(self.params)

    def confusion_variants(self) -> set[str]:
        """The variants holding one confusion matrix per repetition (``validate`` requires exactly these)."""
        return {f"{c}/n={n}" for c in self.params["classifiers"] for n in self.params["n_grid"]}

    def _support(self, data: TaskInput) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        labels = data.records[self.label_column].to_numpy().astype(str)
        rotation = data.rotations[0]
        train, test = fold_indices(data, rotation, "train"), fold_indices(data, rotation, "test")
        return labels, train, test, support_permutations(train, labels, self.params["repetitions"], self.params["seed"])

    def derived_extra(self, data: TaskInput) -> dict:
        """The ``extra`` numbers fixed by the split and the parameters alone (no embeddings): ``validate``
        re-derives them from the registered split instead of reading them from the file."""
        _, train, test, perms = self._support(data)
        return {"support_seed": self.params["seed"], "support_hash": support_hash(perms, data.records["path"].to_numpy()),
                "auc_max_n": saturation_n(perms, tuple(self.params["n_grid"])),
                "n_train": int(len(train)), "n_test": int(len(test))}

    def evaluate(self, data: TaskInput) -> Predictions:
        p = self.params
        labels, train, test, perms = self._support(data)
        rotation = data.rotations[0]
        scored = self.result_labels(data)
        rule = StoppingRule.from_params(p)
        result = sweep(data.features, labels, perms, data.features[test], labels[test], scored,
                       tuple(p["n_grid"]), tuple(p["classifiers"]), seed=p["seed"],
                       settings={c: p[c] for c in p["classifiers"]}, progress=data.progress,
                       desc=f"{self.name} {data.dataset}", rule=rule, engine=p["engine"])
        variants = sweep_variants(result)
        recorded = recorded_variants(np.asarray(data.features), labels, data.records["path"].to_numpy().astype(str),
                                     perms[p["calibration"]["repetition"]], train, test, scored,
                                     p["calibration"], p["seed"], {c: p[c] for c in p["calibration"]["classifiers"]},
                                     fold=rotation["test"][0], engine=p["engine"]) if p.get("calibration") else {}
        derived = self.derived_extra(data)
        return Predictions({**variants, **recorded}, extra={
            **self.derived(variants, scored, {}),
            "engine": engine_record(p["engine"]),
            "stopping": stopping_record(rule, {str(n): [f"{c}/n={n}" for c in p["classifiers"]] for n in p["n_grid"]},
                                        variants),
            "support_seed": derived["support_seed"], "support_hash": derived["support_hash"],
            "effective_n": {str(n): v for n, v in result["effective_n"].items()},
            "auc_max_n": derived["auc_max_n"], "fits": result["fits"],
            "n_train": derived["n_train"], "n_test": derived["n_test"]})

    @property
    def detail_variant(self) -> str:
        """The declared detail variant (svm/n=50), or the largest n of a grid cut below it (a small sample)."""
        clf, n = VARIANT.match(self.declared_detail_variant).group("clf", "n")
        below = [g for g in self.params["n_grid"] if g <= int(n)]
        return f"{clf}/n={max(below) if below else min(self.params['n_grid'])}"

    def derived(self, predictions: dict, labels: list[str], extra: dict) -> dict:
        return swept_sem(predictions, labels)

    def summarise(self, predictions: dict, labels: list[str], extra: dict | None = None) -> dict[str, dict]:
        """``extra.auc_max_n`` as the run derived it (``validate`` checks it against the registered split)."""
        max_n = (extra or {}).get("auc_max_n", max(self.params["n_grid"]))
        return curve_auc_metrics(predictions, labels, max_n)


PARAMS = {  # svm / lr / knn: the scikit-learn keywords each classifier is built with
    "n_grid": list(N_GRID), "repetitions": 100, "seed": 0, "classifiers": list(CLASSIFIERS),
    # repetitions per n: blocks until the 95% CI half-width of the mean is <= precision (null: all `repetitions`)
    "precision": DEFAULT_PRECISION, "min_repetitions": DEFAULT_MINIMUM, "repetition_block": DEFAULT_BLOCK,
    "engine": "fast",
    **{name: dict(settings) for name, settings in REFERENCE_SETTINGS.items()},
    "calibration": {"repetition": 0, "n": 50, "classifiers": ["svm", "lr"], "slice": SLICE_FRACTION, "slice_seed": 0},
}
METHOD = {
    "pipeline": "Yeo-Johnson power transform with standardisation -> PCA (all components) -> classifier",
    "prediction": "argmax of predicted probabilities",
    "auc": "normalised area under balanced accuracy over log2(n), n up to the first n that uses every training "
           "item, per repetition over the repetitions every n has",
    "repetitions": "per n, blocks of `repetition_block` (at least `min_repetitions`, at most `repetitions`) until the "
                   "95% CI half-width of the mean balanced accuracy (Student t) is <= `precision` for every classifier",
    "engine": "fast: RBF kernels and kNN distances by float64 BLAS, classifiers scikit-learn's (>= 99.9% identical "
              "predictions to the reference); reference: scikit-learn's classifiers throughout",
    "intervals": "ci95: Student's t interval of the mean over repetitions; spread95: 2.5-97.5 percentiles of single "
                 "repetitions",
    "calibration": "repetition `calibration.repetition` at n = `calibration.n` refitted with per-cell probabilities "
                   "(calibration metrics); the temperature slice is drawn from training cells outside its support set",
}
# version 2: one recorded repetition (n=50, SVM and LR) with per-cell probabilities, for calibration
# version 3: the paper's grid (750 and 1500 dropped), repetitions stopped at a stated precision, the fast engine
# version 4: the engine's Yeo-Johnson is scikit-learn's PowerTransformer bit for bit (exact lambdas, not
#   golden-section ones within scipy's tolerance), so every engine fit sees the reference pipeline's features
NEEDS = Needs(frozenset({"cell-labels"}), split="holdout-70-30")
TASKS.add("label-efficiency", LabelEfficiency(
    name="label-efficiency", version=5, needs=NEEDS, family="label efficiency",
    protocol="docs/protocols.md#label-efficiency",
    description="Balanced accuracy against n labelled cells per class (1 to 2000), SVM / LR / kNN on "
                "power-transformed, PCA-rotated embeddings, 10 to 100 seeded support sets per n (until the mean is precise)",
    main_metric="svm/balanced_accuracy_auc", declared_detail_variant="svm/n=50",
    variants=tuple(f"{c}/n={n}" for c in CLASSIFIERS for n in N_GRID),
    params=PARAMS, method=METHOD, citation=CITATION,
))
