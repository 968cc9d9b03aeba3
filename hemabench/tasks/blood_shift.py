"""Acquisition shift (task ``blood-shift``): does a probe fitted in one lab work in another?

For every ordered pair (source, target) of the panel's datasets that are present, the
DinoBloom linear probe is fitted on the source's training split restricted to the classes
it shares with the panel (``benchmarks/mappings/blood-shift.yaml``), and scored on the
target's test cells of the classes the source knows. Two variants hold every prediction:

* ``in-domain``: fold = dataset, the diagonal of the matrix (fitted and tested in one lab);
* ``shifted``: fold = ``<source>-><target>``, the off-diagonal cells.

So the per-fold values of ``shifted/balanced_accuracy`` (and ``shifted/ece``) ARE the matrix;
``summarise`` adds the ranking number ``shift/mean_balanced_accuracy`` (mean off-diagonal
balanced accuracy, with an interval for that mean) and the drop against in-domain on the same
target cells and classes, per class too; and PathoROB's robustness index of the embeddings over
the in-domain test cells, datasets standing for centres (shift_index.py), from a neighbour table
stored in ``extra``. docs/metrics.md and docs/robustness.md have the definitions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from hemabench.errors import HemabenchError
from hemabench.protocols.progress import progress_bar
from hemabench.results.calibration import held_out_slice, slice_payload
from hemabench.results.intervals import DIFFERENCE, N_BOOTSTRAP, PROPORTION, percentile_interval
from hemabench.results.metrics import aggregate, encode
from hemabench.splits import split_names
from hemabench.tasks.base import TASKS, Predictions, TaskInput, fold_indices, join_columns
from hemabench.tasks.cell import PROBE_METHOD, PROBE_PARAMS, SLICE_PARAMS, CellProbe, probe_proba
from hemabench.tasks.shift_index import INDEX, INDEX_PARAMS, INDEX_RULES, index_scores, index_table
from hemabench.tasks.transfer import MAPPING_FILE, load_mapping

SHIFT, IN_DOMAIN = "shifted", "in-domain"


def pair_name(source: str, target: str) -> str:
    return f"{source}->{target}"


@dataclass(frozen=True)
class _Lab:
    """One dataset of the panel: mapped labels, training and test rows of mapped classes."""

    name: str
    data: TaskInput
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray

    @classmethod
    def of(cls, name: str, data: TaskInput, mapping: dict, label_column: str) -> _Lab:
        m = mapping["datasets"].get(name)
        if m is None:
            raise HemabenchError(f"mapping {mapping['name']!r} has no classes for dataset {name!r}")
        labels = np.asarray([m.get(str(v), "") for v in data.records[label_column].astype(str)], dtype=object)
        rotation = data.rotations[0]
        train = fold_indices(data, rotation, "train")
        train = train[labels[train] != ""]
        test = fold_indices(data, rotation, "test")  # scored: classes the dataset's own training split has
        return cls(name, data, labels.astype(str), train, test[np.isin(labels[test], np.unique(labels[train]))])

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels[self.train]))


@dataclass(frozen=True)
class BloodShift(CellProbe):
    """The cell probe (its parameters, calibration slice included) across a panel of datasets."""

    def serves(self, spec) -> bool:
        """The anchor datasets of the mapping's panels (data, not code: benchmarks/mappings/)."""
        return spec.name in self.mapping()["panels"] and super().serves(spec)

    param_rules = {**CellProbe.param_rules, "mapping": MAPPING_FILE, **INDEX_RULES}

    def mapping(self) -> dict:
        return load_mapping(self.params["mapping"])

    def panel_for(self, dataset: str) -> list[tuple[str, str | None]]:
        members = self.mapping()["panels"].get(dataset, [])
        return [(d, self.split_for(d)) for d in members if d != dataset]

    def _labs(self, data: TaskInput) -> list[_Lab]:
        inputs = {data.dataset: data, **(data.panel or {})}
        order = [d for d in self.mapping()["panels"].get(data.dataset, [data.dataset]) if d in inputs]
        if len(order) < 2:
            raise HemabenchError(f"blood-shift needs at least two datasets of the {data.dataset} panel; found {order}")
        return [_Lab.of(d, inputs[d], self.mapping(), self.label_column) for d in order]

    @staticmethod
    def _scored(labs: list[_Lab]) -> list[str]:
        return sorted({c for lab in labs for c in lab.classes})

    def result_labels(self, data: TaskInput) -> list[str]:
        return self._scored(self._labs(data))

    @staticmethod
    def _tested(source: _Lab, target: _Lab) -> np.ndarray:
        """The target's test rows of the classes the source knows (what a probe fitted on the source scores)."""
        return target.test[np.isin(target.labels[target.test], source.classes)]

    def expected_cells(self, data: TaskInput) -> dict[str, dict[str, set]]:
        """Per variant and fold, the (id, true label) cells a run tests: the registered test sets under
        the mapping, which ``validate`` requires of a result (no embeddings needed)."""
        labs, out = self._labs(data), {IN_DOMAIN: {}, SHIFT: {}}
        for source in labs:
            for target in labs:
                rows = self._tested(source, target)
                variant = IN_DOMAIN if target is source else SHIFT
                fold = target.name if target is source else pair_name(source.name, target.name)
                out[variant][fold] = set(zip(target.data.records["path"].to_numpy()[rows].astype(str),
                                             target.labels[rows].astype(str)))
        return out

    def evaluate(self, data: TaskInput) -> Predictions:
        labs = self._labs(data)
        scored = self._scored(labs)
        fraction, seed = self.params["calibration_slice"], self.params["calibration_seed"]
        columns = {v: {"id": [], "fold": [], "true": [], "pred": [], "proba": []} for v in (IN_DOMAIN, SHIFT)}
        slices = {v: {"id": [], "fold": [], "true": [], "proba": []} for v in (IN_DOMAIN, SHIFT)}
        solver = {}
        bar = progress_bar(len(labs), f"{self.name} {data.dataset}", data.progress, unit="source")
        for source in labs:
            x, y = source.data.features, source.labels
            held = held_out_slice(source.train, y, seed, fraction)  # training cells only
            rows_of = [self._tested(source, t) for t in labs]  # test cells of the source's classes
            info: dict = {}
            _, proba = probe_proba(self.params, x, y, source.train,
                                   np.concatenate([t.data.features[rows] for t, rows in zip(labs, rows_of)]),
                                   scored, data.device, info)
            solver[source.name] = info
            _, held_proba = probe_proba(self.params, x, y, np.setdiff1d(source.train, held), x[held], scored,
                                        data.device, {})
            start = 0
            for target, rows in zip(labs, rows_of):
                block, start = proba[start:start + len(rows)], start + len(rows)
                variant = IN_DOMAIN if target is source else SHIFT
                fold = target.name if target is source else pair_name(source.name, target.name)
                for key, value in (("id", target.data.records["path"].to_numpy()[rows]), ("true", target.labels[rows]),
                                   ("pred", np.asarray(scored)[block.argmax(axis=1)]), ("proba", block),
                                   ("fold", np.full(len(rows), fold, dtype=object))):
                    columns[variant][key].append(value)
                for key, value in (("id", source.data.records["path"].to_numpy()[held]), ("true", y[held]),
                                   ("proba", held_proba), ("fold", np.full(len(held), fold, dtype=object))):
                    slices[variant][key].append(value)
            bar.update(1)
        bar.close()
        variants = {}
        for v, cols in columns.items():
            variants[v] = join_columns(cols)
            s = {k: np.concatenate(p) for k, p in slices[v].items()}
            variants[v]["calibration"] = slice_payload(s["id"], s["fold"], s["true"], s["proba"], fraction=fraction, seed=seed)
        return Predictions(variants, extra={
            "mapping": {"name": self.params["mapping"], "version": self.mapping()["version"]},
            "panel": [lab.name for lab in labs], "classes": {lab.name: lab.classes for lab in labs},
            "missing": [d for d in self.mapping()["panels"].get(data.dataset, []) if d not in {lab.name for lab in labs}],
            "n_test": {lab.name: int(len(lab.test)) for lab in labs}, "solver": solver,
            INDEX: self._index_table(labs)})

    def _index_table(self, labs: list[_Lab]) -> dict | None:
        """PathoROB's neighbour table over the in-domain test cells (shift_index.py), datasets as centres."""
        ids, centres, classes, features = ([] for _ in range(4))
        for lab in labs:
            ids.append(lab.data.records["path"].to_numpy()[lab.test].astype(str))
            centres.append(np.full(len(lab.test), lab.name, dtype=object).astype(str))
            classes.append(lab.labels[lab.test])
            features.append(np.asarray(lab.data.features[lab.test], dtype=np.float64))
        p = self.params
        return index_table(*(np.concatenate(a) for a in (ids, centres, classes, features)), p["index_k"],
                           p["index_cells"], p["calibration_seed"])

    def summarise(self, predictions: dict, labels: list[str], extra: dict | None = None) -> dict[str, dict]:
        p = self.params
        return {**shift_drops(predictions, labels, seed=p["calibration_seed"]),
                **index_scores(predictions[IN_DOMAIN], (extra or {}).get(INDEX), p["index_k"], p["index_cells"],
                               p["calibration_seed"])}


def _pairs(predictions: dict) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per off-diagonal pair: (target, true, shifted pred, in-domain pred on the same cells, cell ids)."""
    shifted, own = predictions[SHIFT], predictions[IN_DOMAIN]
    s_fold, s_id = np.asarray(shifted["fold"], dtype=str), np.asarray(shifted["id"], dtype=str)
    o_fold, o_id = np.asarray(own["fold"], dtype=str), np.asarray(own["id"], dtype=str)
    out = []
    for fold in dict.fromkeys(s_fold.tolist()):
        target = fold.split("->", 1)[1]
        rows = np.flatnonzero(s_fold == fold)
        own_rows = np.flatnonzero(o_fold == target)
        pos = np.searchsorted(o_id[own_rows], s_id[rows])  # ids are sorted within a fold
        if np.any(pos >= len(own_rows)) or np.any(o_id[own_rows][np.minimum(pos, len(own_rows) - 1)] != s_id[rows]):
            raise ValueError(f"shifted fold {fold!r} holds cells that the in-domain fold {target!r} lacks")
        own_rows = own_rows[pos]
        out.append((target, np.asarray(shifted["true"])[rows], np.asarray(shifted["pred"])[rows],
                    np.asarray(own["pred"])[own_rows], s_id[rows]))
    return out


def _recalls(true_idx, pred_idx, weights, n_classes) -> np.ndarray:
    """Weighted recall per class (NaN where the class has no weight)."""
    support = np.bincount(true_idx, weights, n_classes)
    hits = np.bincount(true_idx, weights * (true_idx == pred_idx), n_classes)
    return np.divide(hits, support, out=np.full(n_classes, np.nan), where=support > 0)


def shift_drops(predictions: dict, labels: list[str], seed: int = 0, n_boot: int = N_BOOTSTRAP) -> dict[str, dict]:
    """Per off-diagonal pair: the shifted balanced accuracy (``shift/mean_balanced_accuracy``: the
    ranking number) and its drop from in-domain on the same target cells and classes (also per
    class). Intervals: a paired bootstrap over each target's test cells (one resample per target,
    shared by all its pairs), so each interval is one for the mean it is printed with; re-centred
    on that mean and clipped to [0, 1] (a drop: [-1, 1]), as ``intervals.percentile_interval`` does."""
    pairs = [(t, encode(y, labels), encode(ps, labels), encode(po, labels), ids) for t, y, ps, po, ids in _pairs(predictions)]
    k = len(labels)

    def drops(weights_of) -> np.ndarray:  # (pairs, 2 + classes): shifted BA, its drop, per-class drops
        rows = []
        for t, y, ps, po, ids in pairs:
            w = weights_of(t, ids)
            r_own, r_shift = _recalls(y, po, w, k), _recalls(y, ps, w, k)
            rows.append(np.concatenate([[np.nanmean(r_shift), np.nanmean(r_own) - np.nanmean(r_shift)],
                                        r_own - r_shift]))
        return np.asarray(rows)

    point = drops(lambda t, ids: np.ones(len(ids)))
    cells = {t: np.unique(np.concatenate([ids for tt, *_, ids in pairs if tt == t])) for t, *_ in pairs}
    rng = np.random.default_rng(seed)
    boot = []
    with warnings.catch_warnings():  # a class absent from a resample (or from every pair) is a NaN, dropped below
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        for _ in range(n_boot):
            counts = {t: np.bincount(rng.integers(0, len(c), len(c)), minlength=len(c)) for t, c in cells.items()}
            weights = lambda t, ids, counts=counts: counts[t][np.searchsorted(cells[t], ids)].astype(float)  # noqa: E731
            boot.append(np.nanmean(drops(weights), axis=0))
    boot = np.asarray(boot)
    out = {}
    names = ["mean_balanced_accuracy", "drop_balanced_accuracy", *(f"drop_sensitivity_{c}" for c in labels)]
    for j, name in enumerate(names):
        values = point[:, j][np.isfinite(point[:, j])]
        finite = boot[:, j][np.isfinite(boot[:, j])]
        if len(values) and len(finite):
            summary = aggregate(values.tolist())
            bounds = PROPORTION if name == "mean_balanced_accuracy" else DIFFERENCE
            out[f"shift/{name}"] = {**summary, "ci95": percentile_interval(finite, summary["mean"], bounds)}
    return out


PANELS = load_mapping("blood-shift")["panels"]
# every member's 70/30 hold-out where it has one (raabin: its official split)
SPLITS = {d: "holdout-70-30" for panel in PANELS.values() for d in panel if "holdout-70-30" in split_names(d)}
TASKS.add("blood-shift", BloodShift(
    name="blood-shift", version=2, datasets=tuple(PANELS), family="acquisition shift",
    protocol="docs/metrics.md#2-acquisition-shift-blood-shift",
    description="Linear probe fitted on one dataset's training split (shared white-cell classes), scored on every "
                "other dataset's test split: the N x N matrix of balanced accuracy and ECE, and the drop under shift; "
                "PathoROB's robustness index of the embeddings, datasets as centres",
    main_metric="shift/mean_balanced_accuracy", declared_detail_variant=SHIFT, variants=(IN_DOMAIN, SHIFT),
    splits=SPLITS,
    params={"mapping": "blood-shift", **PROBE_PARAMS, **SLICE_PARAMS, **INDEX_PARAMS},
    method={**PROBE_METHOD, "robustness index": (
        "PathoROB's (Komen et al. 2026) over the in-domain test cells, datasets as centres: "
        "docs/robustness.md#robustness-index-on-the-blood-shift-panel-task-blood-shift")},
    citation="hemabench (acquisition shift across public blood datasets); robustness index after PathoROB",
))
