"""Tasks: small objects with declarative metadata (MTEB-style) and one ``evaluate`` method.

A task sees only embeddings, labels and a materialised split; it returns predictions for
the test samples. Metrics are always derived from those stored predictions (see
``hemabench.results``), so every number in a result file can be recomputed and checked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hemabench.registry import Registry
from hemabench.results.calibration import slice_payload


@dataclass
class TaskInput:
    """Everything a protocol may use: no images, no paths on disk."""

    features: np.ndarray  # (N, D) float32, rows aligned with records
    records: pd.DataFrame  # the dataset's records (label, fine_label, patient, ...)
    parts: np.ndarray  # (N,) part name per record under the task's split
    rotations: list[dict[str, list[str]]]  # role -> parts, one per fold
    valid: np.ndarray  # (N,) False for images that failed to decode
    device: str = "auto"
    seed: int = 0
    dataset: str = ""
    patients: pd.DataFrame | None = None  # per-patient metadata sheet (index = patient id), where shipped
    source: TaskInput | None = None  # a second dataset, for tasks that train on one and test on another
    panel: dict[str, TaskInput] | None = None  # further datasets by name, for tasks over several (blood-shift)


@dataclass
class Predictions:
    """What a task predicted, per variant (a classifier, a k, a magnification, a label budget...).

    Each variant is a dict of equal-length arrays: ``id`` (record path or patient id),
    ``fold`` (fold, part or repetition), ``true`` and ``pred`` labels, and optionally
    ``proba`` (n x labels, for ROC/PR AUC) and ``group`` (patient, for patient-level
    accuracy). Tasks with thousands of repeated fits give ``fold`` and ``confusions``
    (one confusion matrix per repetition) instead of per-sample arrays.
    """

    variants: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # task-specific, JSON-able (e.g. solver status)


@dataclass(frozen=True)
class Task:
    name: str
    version: int
    description: str
    datasets: tuple[str, ...]
    protocol: str  # where the protocol is specified
    main_metric: str  # "<variant>/<metric>"
    variants: tuple[str, ...]
    label_column: str = "label"
    splits: dict[str, str] = field(default_factory=dict)  # dataset -> split rule (default: the dataset's default)
    params: dict = field(default_factory=dict)
    citation: str = ""
    detail_variant: str = ""  # variant whose per-class numbers and confusion matrix are reported (default: main's)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # target -> (source dataset, its split rule)

    def split_for(self, dataset: str) -> str | None:
        return self.splits.get(dataset)

    def source_for(self, dataset: str) -> tuple[str, str] | None:
        """A second dataset the task trains on (bone marrow for blood targets), or None."""
        return self.sources.get(dataset)

    def panel_for(self, dataset: str) -> list[tuple[str, str | None]]:
        """Further (dataset, split rule) pairs the task uses where present (a cross-dataset panel)."""
        return []

    @property
    def main_variant(self) -> str:
        return self.detail_variant or self.main_metric.rsplit("/", 1)[0]

    def result_labels(self, data: TaskInput) -> list[str]:
        """The classes scored, in the order of confusion matrices and probabilities."""
        return sorted(set(data.records.loc[data.valid, self.label_column].astype(str)))

    def summarise(self, predictions: dict, labels: list[str], extra: dict | None = None) -> dict[str, dict]:
        """Metrics derived across variants (e.g. an area under a curve), from stored predictions."""
        return {}

    def with_params(self, **overrides) -> Task:
        """The same task with some parameters changed (suites may do this; results record it)."""
        return dataclasses.replace(self, params={**self.params, **overrides}) if overrides else self

    def evaluate(self, data: TaskInput) -> Predictions:
        raise NotImplementedError

    def metadata(self) -> dict:
        return {"name": self.name, "version": self.version, "description": self.description,
                "datasets": list(self.datasets), "protocol": self.protocol, "main_metric": self.main_metric,
                "variants": list(self.variants), "label_column": self.label_column, "params": self.params,
                "detail_variant": self.main_variant, "sources": {k: list(v) for k, v in self.sources.items()},
                "citation": self.citation}


TASKS: Registry[Task] = Registry("task")


def fold_indices(data: TaskInput, rotation: dict[str, list[str]], role: str) -> np.ndarray:
    """Row numbers of the valid records whose part plays ``role`` in this rotation."""
    return np.flatnonzero(np.isin(data.parts, rotation.get(role, [])) & data.valid)


def per_fold(data: TaskInput, labels: np.ndarray, fit_predict) -> Predictions:
    """Run ``fit_predict(train_idx, test_idx) -> {variant: pred}`` on every rotation and pool.

    A variant may give ``{"pred", "proba", "slice"}`` instead of ``pred``: probabilities in
    ``result_labels`` order, and ``slice = (training rows held out, their probabilities from a
    fit without them, slice fraction, slice seed)``, stored as the variant's ``calibration`` entry."""
    pooled: dict[str, dict[str, list]] = {}
    slices: dict[str, list] = {}
    paths = data.records["path"].to_numpy()
    for rotation in data.rotations:
        train, test = fold_indices(data, rotation, "train"), fold_indices(data, rotation, "test")
        if len(test) == 0 or len(train) == 0:
            continue
        for variant, out in fit_predict(train, test).items():
            out = out if isinstance(out, dict) else {"pred": out}
            columns = pooled.setdefault(variant, {"id": [], "fold": [], "true": [], "pred": []})
            columns["id"].append(paths[test])
            columns["fold"].append(np.full(len(test), rotation["test"][0], dtype=object))
            columns["true"].append(labels[test])
            columns["pred"].append(np.asarray(out["pred"]))
            if "proba" in out:
                columns.setdefault("proba", []).append(np.asarray(out["proba"], dtype=float))
            if "slice" in out:
                slices.setdefault(variant, []).append((rotation["test"][0], *out["slice"]))
    variants = {v: {k: np.concatenate(parts) if k == "proba" else np.concatenate(parts).astype(str)
                    for k, parts in cols.items()} for v, cols in pooled.items()}
    for variant, folds in slices.items():  # (fold, rows, proba, fraction, seed) per fold
        rows = np.concatenate([f[1] for f in folds]).astype(int)
        variants[variant]["calibration"] = slice_payload(
            paths[rows], np.concatenate([np.full(len(f[1]), f[0], dtype=object) for f in folds]), labels[rows],
            np.concatenate([f[2] for f in folds]), fraction=folds[0][3], seed=folds[0][4])
    return Predictions(variants)
