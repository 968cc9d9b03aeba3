"""Clinically weighted errors, from versioned cost files in ``benchmarks/costs/``.

Accuracy counts a blast read as a lymphocyte the same as a band read as a segmented
neutrophil; a cost matrix does not. Each file groups classes (lineages for cell types)
and prices every (true, predicted) pair by rules (format in ``cell-types.yaml``). The
mean cost per cell and the group-level accuracy are computed from the stored
predictions (per fold) or stored confusions (per repetition) of a result's detail
variant, so they can be recomputed like every other number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hemabench.errors import HemabenchError
from hemabench.files.untrusted import load_yaml
from hemabench.paths import benchmarks_dir
from hemabench.results import Result
from hemabench.results.metrics import aggregate, confusion_counts, encode


@dataclass(frozen=True)
class CostModel:
    name: str
    version: int
    group_kind: str
    description: str
    groups: dict[str, tuple[str, ...]]
    same_group: float
    other_group: float
    rules: tuple[dict, ...]

    @classmethod
    def from_file(cls, path: Path) -> CostModel:
        raw = load_yaml(path, mapping=True)
        try:
            groups = {str(g): tuple(map(str, members)) for g, members in raw["groups"].items()}
            model = cls(str(raw["name"]), int(raw["version"]), str(raw.get("group_kind", "group")),
                        str(raw.get("description", "")).strip(), groups, float(raw["same_group"]),
                        float(raw["other_group"]), tuple(raw.get("rules") or ()))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HemabenchError(f"cost file {path}: not a valid cost model ({exc!r})") from None
        seen = [c for members in groups.values() for c in members]
        if len(seen) != len(set(seen)):
            raise HemabenchError(f"cost file {path}: a class is in two groups")
        for i, rule in enumerate(model.rules):
            model._select(rule.get("truth"), list(seen), f"{path}: rules[{i}].truth")
            model._select(rule.get("pred"), list(seen), f"{path}: rules[{i}].pred")
        return model

    @property
    def classes(self) -> set[str]:
        return {c for members in self.groups.values() for c in members}

    def covers(self, labels) -> bool:
        return bool(labels) and set(map(str, labels)) <= self.classes

    def group_of(self, label: str) -> str:
        return next(g for g, members in self.groups.items() if label in members)

    def _select(self, spec, labels: list[str], where: str = "") -> list[int]:
        """Indices of ``labels`` named by a rule side: code, list of codes, '@group' or '*'."""
        items = spec if isinstance(spec, list) else [spec]
        out = set()
        for item in map(str, items):
            if item == "*":
                out |= set(range(len(labels)))
            elif item.startswith("@"):
                if item[1:] not in self.groups:
                    raise HemabenchError(f"{where}: unknown group {item!r}")
                out |= {i for i, c in enumerate(labels) if c in self.groups[item[1:]]}
            elif item in self.classes:
                out |= {labels.index(item)} if item in labels else set()
            else:
                raise HemabenchError(f"{where}: {item!r} is not a class of any group")
        return sorted(out)

    def matrix(self, labels: list[str]) -> np.ndarray:
        """cost[true, pred] for these labels (rows = true), diagonal 0."""
        group = np.array([self.group_of(c) for c in labels])
        cost = np.where(group[:, None] == group[None, :], self.same_group, self.other_group).astype(float)
        for rule in self.rules:
            rows, cols = self._select(rule["truth"], labels), self._select(rule["pred"], labels)
            cost[np.ix_(rows, cols)] = float(rule["cost"])
            if rule.get("symmetric"):
                cost[np.ix_(cols, rows)] = float(rule["cost"])
        np.fill_diagonal(cost, 0.0)
        return cost

    def scores(self, confusions: list[np.ndarray], labels: list[str]) -> dict:
        """Mean cost per sample and group-level accuracy, per fold/repetition and pooled."""
        cost = self.matrix(labels)
        same = np.array([[self.group_of(a) == self.group_of(b) for b in labels] for a in labels])
        per_fold = {"mean_cost": [], "group_accuracy": []}
        for cm in confusions:
            cm = np.asarray(cm, dtype=float)
            if cm.sum():
                per_fold["mean_cost"].append(float((cm * cost).sum() / cm.sum()))
                per_fold["group_accuracy"].append(float((cm * same).sum() / cm.sum()))
        pooled = np.sum(np.asarray(confusions, dtype=float), axis=0)
        out = {name: {**aggregate(values), "pooled": float(((pooled * (cost if name == "mean_cost" else same)).sum())
                                                            / pooled.sum())}
               for name, values in per_fold.items() if values}
        return {**out, "model": f"{self.name} v{self.version}", "group_kind": self.group_kind}


def load_cost_models(folder: Path | None = None) -> list[CostModel]:
    folder = folder or benchmarks_dir() / "costs"
    return [CostModel.from_file(p) for p in sorted(Path(folder).glob("*.yaml"))]


def model_for(labels, models: list[CostModel]) -> CostModel | None:
    """The first cost model that lists every label, or None."""
    return next((m for m in models if m.covers(labels)), None)


def variant_confusions(columns: dict, labels: list[str]) -> list[np.ndarray]:
    """One confusion matrix per fold (per-sample predictions) or per repetition (stored)."""
    if "confusions" in columns:
        return [np.asarray(c) for c in columns["confusions"]]
    folds = np.asarray(columns["fold"], dtype=str)
    true, pred = encode(columns["true"], labels), encode(columns["pred"], labels)
    return [confusion_counts(true[folds == f], pred[folds == f], len(labels)) for f in dict.fromkeys(folds)]


def clinical_scores(result: Result, variant: str, models: list[CostModel]) -> dict | None:
    """Cost and group accuracy of one result's variant, or None when no cost file covers its labels."""
    model = model_for(result.labels, models)
    columns = result.variant_predictions(variant)
    if model is None or columns is None:
        return None
    return model.scores(variant_confusions(columns, result.labels), result.labels)
