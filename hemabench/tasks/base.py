"""Tasks: small objects with declarative metadata (MTEB-style) and one ``evaluate`` method.

A task sees only embeddings, labels and a materialised split; it returns predictions for
the test samples. Metrics are always derived from those stored predictions (see
``hemabench.results``), so every number in a result file can be recomputed and checked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from hemabench.datasets import DATASETS
from hemabench.errors import HemabenchError
from hemabench.protocols.progress import progress_bar
from hemabench.registry import Registry
from hemabench.results.calibration import slice_payload
from hemabench.results.scoring import score_predictions
from hemabench.tasks.needs import Needs
from hemabench.tasks.params import Rule, params_problem


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
    progress: bool = False  # show progress bars (fits, folds, epochs) on stderr; off with --quiet
    panel: dict[str, TaskInput] | None = None  # further datasets by name, for tasks over several (blood-shift)
    # perturbed views the task asked for (``Task.view_request``): (family, severity) -> features of ``view_rows``
    views: dict[tuple[str, int], np.ndarray] | None = None
    view_rows: np.ndarray | None = None  # the record rows of each view's features, in order


@dataclass(frozen=True)
class ViewRequest:
    """Perturbed views a task needs: the runner embeds ``rows`` under each (family, severity) in
    the embeddings stage (hemabench/embeddings/views.py), so the task itself never sees an image."""

    rows: np.ndarray  # record row numbers
    views: tuple[tuple[str, int], ...]  # (family, severity) pairs, see hemabench/images/perturb.py


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
    protocol: str  # where the protocol is specified
    main_metric: str  # "<variant>/<metric>"
    variants: tuple[str, ...]
    datasets: tuple[str, ...] = ()  # left out: every registered dataset the task serves (``needs``, ``serves``)
    label_column: str = "label"
    splits: dict[str, str] = field(default_factory=dict)  # dataset -> split rule (default: the dataset's default)
    params: dict = field(default_factory=dict)  # every value here is used by evaluate (suites may override)
    citation: str = ""
    declared_detail_variant: str = ""  # variant whose per-class numbers and confusion matrix are reported (default:
    # the main metric's); ``detail_variant`` is the one a run reports
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # target -> (source dataset, its split rule)
    stores_confusions: ClassVar[bool] = False  # True: predictions are (fold, confusions), never per-sample
    scores_a_sample: ClassVar[bool] = False  # True: scores ``tested_counts`` of a test fold, not all of it
    needs: Needs = field(default_factory=Needs)  # what a dataset must provide (see tasks/needs.py)
    method: dict = field(default_factory=dict)  # fixed parts of the protocol, in words (not parameters)
    family: str = ""  # the group its leaderboard columns are shown under (default: the task's name)
    param_rules: ClassVar[dict[str, Rule]] = {}  # parameter -> what its value must be (tasks/params.py)

    def __post_init__(self) -> None:
        if not self.datasets:  # the registered datasets it serves, derived from ``needs`` (and ``serves``)
            object.__setattr__(self, "datasets", tuple(spec.name for spec in DATASETS if self.serves(spec)))
        if not self.sources and self.needs.source_split:  # target -> (its source dataset, split rule)
            object.__setattr__(self, "sources", {d: s for d in self.datasets if (s := self.needs.source_for(d))})
        if not self.family:
            object.__setattr__(self, "family", self.name)

    def serves(self, spec) -> bool:
        """Whether the task can run on a dataset (registered or a user's own)."""
        return self.needs.serves(spec)

    def split_for(self, dataset: str) -> str | None:
        return self.splits.get(dataset) or self.needs.split_for(dataset)

    def source_for(self, dataset: str) -> tuple[str, str] | None:
        """A second dataset the task trains on (bone marrow for blood targets), or None."""
        return self.sources.get(dataset) or self.needs.source_for(dataset)

    def panel_for(self, dataset: str) -> list[tuple[str, str | None]]:
        """Further (dataset, split rule) pairs the task uses where present (a cross-dataset panel)."""
        return []

    @property
    def detail_variant(self) -> str:
        """The variant whose per-class numbers and confusion matrix a result reports (``Result.detail_variant``)."""
        return self.declared_detail_variant or self.main_metric.rsplit("/", 1)[0]

    def result_labels(self, data: TaskInput) -> list[str]:
        """The classes scored, in the order of confusion matrices and probabilities."""
        return sorted(set(data.records.loc[data.valid, self.label_column].astype(str)))

    def summarise(self, predictions: dict, labels: list[str], extra: dict | None = None) -> dict[str, dict]:
        """Metrics derived across variants (e.g. an area under a curve), from stored predictions."""
        return {}

    def score(self, predictions: dict, labels: list[str], extra: dict | None, seed: int) -> dict:
        """``metrics``, ``per_class`` and ``confusion_matrix`` of stored predictions (JSON form): the one
        computation the runner writes and ``validate`` repeats (``seed``: the recorded bootstrap seed)."""
        scores = score_predictions(predictions, labels, self.detail_variant, seed=seed)
        scores["metrics"].update(self.summarise(predictions, labels, extra))
        return scores

    def derived(self, predictions: dict, labels: list[str], extra: dict) -> dict:
        """``extra`` entries that follow from the predictions alone (a cross-magnification matrix, a
        standard error over repetitions): ``evaluate`` stores them and ``validate`` recomputes them
        from the stored predictions with this same method. ``extra``: what ``evaluate`` recorded
        beside them (e.g. the magnifications present)."""
        return {}

    def tested_counts(self, counts: dict[str, int]) -> dict[str, int]:
        """Per-class counts of the cells scored out of a test fold with per-class ``counts``."""
        return dict(counts)

    def view_request(self, data: TaskInput) -> ViewRequest | None:
        """Perturbed views of some records this task needs (None: none, the usual case)."""
        return None

    def pooled_members(self, variant: str, variants) -> list[str] | None:
        """The variants whose rows a pooled variant concatenates (its ids repeat), or None."""
        return None

    def known_variant(self, variant: str) -> bool:
        """A variant the task can produce: a default one, or one a parameter change adds (e.g. a fraction)."""
        return variant in self.variants

    def with_params(self, **overrides) -> Task:
        """The same task with some parameters changed (suites may do this; results record it).

        Only the task's own parameters can be set, and only to values its computation
        accepts: an override that would be recorded without changing anything is an error."""
        if not overrides:
            return self
        unknown = [key for key in overrides if key not in self.params]
        if unknown:
            raise HemabenchError(f"task {self.name!r} has no parameter {unknown[0]!r}; its parameters are: "
                                 f"{', '.join(self.params)}")
        task = dataclasses.replace(self, params={**self.params, **overrides})
        problem = task.check_params()
        if problem:
            raise HemabenchError(f"task {self.name!r}: {problem}")
        return task

    def check_params(self) -> str | None:
        """Why ``self.params`` cannot be computed with, or None: each value against its rule in
        ``param_rules``; tasks add what ties parameters together (calling this first)."""
        return params_problem(self.param_rules, self.params)

    def evaluate(self, data: TaskInput) -> Predictions:
        raise NotImplementedError

    def metadata(self) -> dict:
        return {"name": self.name, "version": self.version, "description": self.description,
                "datasets": list(self.datasets), "protocol": self.protocol, "main_metric": self.main_metric,
                "variants": list(self.variants), "label_column": self.label_column, "params": self.params,
                "detail_variant": self.detail_variant, "needs": self.needs.describe(),
                "sources": {k: list(v) for k, v in self.sources.items()},
                "citation": self.citation, **({"method": self.method} if self.method else {})}


TASKS: Registry[Task] = Registry("task")


def fold_indices(data: TaskInput, rotation: dict[str, list[str]], role: str) -> np.ndarray:
    """Row numbers of the valid records whose part plays ``role`` in this rotation."""
    return np.flatnonzero(np.isin(data.parts, rotation.get(role, [])) & data.valid)


def per_fold(data: TaskInput, labels: np.ndarray, fit_predict, desc: str = "folds") -> Predictions:
    """Run ``fit_predict(train_idx, test_idx) -> {variant: pred}`` on every rotation and pool
    (a bar of folds done when ``data.progress``).

    A variant may give ``{"pred", "proba", "slice"}`` instead of ``pred``: probabilities in
    ``result_labels`` order, and ``slice = (training rows held out, their probabilities from a
    fit without them, slice fraction, slice seed)``, stored as the variant's ``calibration`` entry."""
    pooled: dict[str, dict[str, list]] = {}
    slices: dict[str, list] = {}
    paths = data.records["path"].to_numpy()
    with progress_bar(len(data.rotations), f"{desc} {data.dataset}".strip(), data.progress, unit="fold") as bar:
        for rotation in data.rotations:
            train, test = fold_indices(data, rotation, "train"), fold_indices(data, rotation, "test")
            if len(test) and len(train):
                for variant, out in fit_predict(train, test).items():
                    _pool(pooled, slices, variant, out if isinstance(out, dict) else {"pred": out}, rotation["test"][0],
                          paths[test], labels[test])
            bar.update(1)
    variants = {v: join_columns(cols) for v, cols in pooled.items()}
    for variant, folds in slices.items():  # (fold, rows, proba, fraction, seed) per fold
        rows = np.concatenate([f[1] for f in folds]).astype(int)
        variants[variant]["calibration"] = slice_payload(
            paths[rows], np.concatenate([np.full(len(f[1]), f[0], dtype=object) for f in folds]), labels[rows],
            np.concatenate([f[2] for f in folds]), fraction=folds[0][3], seed=folds[0][4])
    return Predictions(variants)


def join_columns(columns: dict[str, list]) -> dict[str, np.ndarray]:
    """One variant's columns, each a list of chunks, joined: ``proba`` as given, the others as strings."""
    return {k: np.concatenate(parts) if k == "proba" else np.concatenate(parts).astype(str)
            for k, parts in columns.items()}


def _pool(pooled: dict, slices: dict, variant: str, out: dict, fold: str, ids, true) -> None:
    """Append one fold's predictions of one variant (and its calibration slice, if any)."""
    columns = pooled.setdefault(variant, {"id": [], "fold": [], "true": [], "pred": []})
    columns["id"].append(ids)
    columns["fold"].append(np.full(len(ids), fold, dtype=object))
    columns["true"].append(true)
    columns["pred"].append(np.asarray(out["pred"]))
    if "proba" in out:
        columns.setdefault("proba", []).append(np.asarray(out["proba"], dtype=float))
    if "slice" in out:
        slices.setdefault(variant, []).append((fold, *out["slice"]))
