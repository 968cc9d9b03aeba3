"""BreakHis across magnifications (protocols.md section 6, after Chhipa et al.'s MPCS), frozen encoder.

All four tasks are one loop: per rotation of the patient-wise folds and per training
magnification, fit the DinoBloom probe on some training rows (:meth:`_Context.probe`) and
predict *all* of that rotation's test rows, whatever their magnification. One fit thus
serves every test magnification, and the cross-magnification diagonal is the same fit on
the same matrix as ``breakhis-binary``, so the two agree exactly, not just closely.
Variants pool each image once per classifier that predicted it; ``group`` = patient makes
the scorer add patient-level accuracy (PLA) next to image-level accuracy (ILA).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hemabench.errors import HemabenchError
from hemabench.protocols.progress import progress_bar
from hemabench.results.calibration import align_proba, held_out_slice, pooled_slice, slice_payload
from hemabench.results.scoring import patient_accuracy
from hemabench.tasks.base import TASKS, Predictions, TaskInput, fold_indices
from hemabench.tasks.cell import PROBE_METHOD, PROBE_PARAMS, SLICE_PARAMS, ProbeTask, probe_proba
from hemabench.tasks.needs import Needs
from hemabench.tasks.params import int_list

MAGNIFICATIONS = (40, 100, 200, 400)
FRACTIONS = (5, 10, 20, 40, 60, 80, 100)  # percent of the training labels (breakhis-limited)
MAIN_FRACTION = 20  # MPCS's limited-label headline (its Table 5)
NEEDS = Needs(frozenset({"tissue-labels", "tumour-subtypes", "patients", "magnifications"}))
CITATION = "Chhipa et al., Magnification Prior (MPCS), WACV 2023; Spanhol et al., IEEE TBME 2016"
METHOD = {**PROBE_METHOD, "fit": "one probe per rotation and training magnification, on the raw embeddings",
          "magnifications": list(MAGNIFICATIONS),
          "intervals": "ci95: patients redrawn within each test fold (image and patient-level metrics alike)",
          "calibration": "per rotation and training magnification, a seeded label-stratified share "
                         "(calibration_slice) of the training patients is held out; a second probe fitted on the "
                         "fit's training images without them predicts their images, and each fold's temperature is "
                         "fitted on those predictions (a pooled variant: on the slices of every fit it pools)"}


def mag(m: int) -> str:
    return f"{m}x"


def check_patient_split(records, parts: np.ndarray, rotations: list[dict]) -> None:
    """Raise if a patient has images on both sides of any rotation: a leak would inflate every number."""
    patients = records["patient"].astype(str).to_numpy()
    for rotation in rotations:
        train = set(patients[np.isin(parts, rotation.get("train", []))])
        shared = sorted(train & set(patients[np.isin(parts, rotation.get("test", []))]))
        if shared:
            raise HemabenchError(f"split leak: patient(s) {shared[:5]} in both train {rotation['train']} and test "
                                 f"{rotation['test']}; BreakHis tasks need a patient-wise split (patient-cv5)")


def limited_sample(labels: np.ndarray, keys: np.ndarray, rows: np.ndarray, fractions, seed) -> dict[int, np.ndarray]:
    """Nested, class-stratified subsets of the training ``rows``: fraction -> sorted rows.

    Per class one seeded permutation (of the rows ordered by ``keys``, so file-system order
    does not matter); fraction f keeps its first ceil(f * n_class / 100) rows, at least
    one per class, so a larger fraction always contains the smaller ones and 100% is all.
    """
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows)[np.argsort(keys[rows], kind="stable")]
    per_class = [rng.permutation(rows[labels[rows] == c]) for c in np.unique(labels[rows])]
    return {f: np.sort(np.concatenate([order[: -(-len(order) * f // 100)] for order in per_class]))
            for f in fractions}


PATIENT_SLICE = "training patients, label-stratified, per rotation and magnification; seed [seed, rotation index, magnification]"


def patient_slice(labels: np.ndarray, patients: np.ndarray, rows: np.ndarray, seed, fraction: float) -> np.ndarray:
    """The rows of a seeded, label-stratified share of the patients among ``rows`` (the training
    rows of one rotation and magnification): a patient's images are held out together."""
    names, first = np.unique(patients[rows], return_index=True)
    picked = held_out_slice(np.arange(len(names)), labels[rows][first], seed, fraction)
    return np.sort(rows[np.isin(patients[rows], names[picked])])


@dataclass
class _Context:
    """One evaluation's arrays, the usable folds, and a log of every probe fit."""

    data: TaskInput
    labels: np.ndarray
    mags: np.ndarray
    present: list[int]  # magnifications with at least one valid image
    folds: list[tuple[int, str, np.ndarray, np.ndarray]]  # (rotation index, test fold, train rows, test rows)
    scored: list[str] = field(default_factory=list)  # result labels: the probability columns
    fits: list[dict] = field(default_factory=list)
    chunks: dict[str, list] = field(default_factory=dict)
    held: list[tuple] = field(default_factory=list)  # per fit: (fold, slice rows, their probabilities)
    fed: list[list[str]] = field(default_factory=list)  # per fit: the variants its test predictions went to

    @classmethod
    def build(cls, data: TaskInput, label_column: str) -> _Context:
        check_patient_split(data.records, data.parts, data.rotations)
        mags = data.records["magnification"].astype(int).to_numpy()
        present = [m for m in MAGNIFICATIONS if np.any((mags == m) & data.valid)]
        folds = [(i, r["test"][0], fold_indices(data, r, "train"), fold_indices(data, r, "test"))
                 for i, r in enumerate(data.rotations)]
        labels = data.records[label_column].astype(str).to_numpy()
        return cls(data, labels, mags, present, [f for f in folds if len(f[2]) and len(f[3])],
                   sorted(set(labels[data.valid])))

    def probe(self, params: dict, train: np.ndarray, test: np.ndarray, held: np.ndarray, fold: str,
              **tags) -> tuple[np.ndarray, np.ndarray]:
        """The shared step: fit on rows ``train``, predict rows ``test`` (labels and probabilities in
        ``scored`` order); logs C, iterations, status. For temperature scaling, a second fit on
        ``train`` without the slice patients' rows ``held`` predicts ``held`` (training rows only)."""
        pred, proba = self._fit(params, train, test, fold=fold, **tags)
        rest = np.setdiff1d(train, held)
        if len(held) and len(rest):
            _, held_proba = self._fit(params, rest, held, log=False)
        else:  # nothing held out, or nothing left to fit on: this fit adds no slice cells
            held, held_proba = held[:0], np.zeros((0, len(self.scored)))
        self.held.append((fold, held, held_proba))
        self.fed.append([])
        return pred, proba

    def _fit(self, params: dict, train: np.ndarray, test: np.ndarray, log: bool = True,
             **tags) -> tuple[np.ndarray, np.ndarray]:
        classes = np.unique(self.labels[train])
        info: dict = {"n_train": int(len(train)), "train_per_class": {str(c): int(np.sum(self.labels[train] == c))
                                                                      for c in classes}}
        if len(classes) == 1:  # a probe needs two classes; the constant classifier is its limit
            pred = np.full(len(test), classes[0], dtype=object)
            proba = align_proba(np.ones((len(test), 1)), classes, self.scored)
            info["status"] = "single training class: constant prediction"
        else:
            X = np.asarray(self.data.features, dtype=np.float32)
            pred, proba = probe_proba(params, X, self.labels, train, X[test], self.scored, self.data.device, info)
        if log:
            self.fits.append({**tags, **info})
        return pred, proba

    def add(self, variants, rows: np.ndarray, fold: str, pred: np.ndarray, proba: np.ndarray) -> None:
        """File test predictions of the latest fit under ``variants``."""
        for variant in variants:
            self.chunks.setdefault(variant, []).append((rows, fold, pred, proba))
            if variant not in self.fed[-1]:
                self.fed[-1].append(variant)

    def add_by_mag(self, test: np.ndarray, fold: str, fit: tuple[np.ndarray, np.ndarray], names) -> None:
        """Split one fit's (labels, probabilities) on ``test`` by the test magnification; ``names(t)`` -> variants."""
        for t in self.present:
            sel = self.mags[test] == t
            if sel.any():
                self.add(names(t), test[sel], fold, fit[0][sel], fit[1][sel])

    def predictions(self, order, fraction: float, seed: int) -> Predictions:
        """Variants in the declared ``order``, then any others filed (e.g. a fraction a suite adds)."""
        paths = self.data.records["path"].astype(str).to_numpy()
        patients = self.data.records["patient"].astype(str).to_numpy()
        variants = {}
        order = [v for v in order if v in self.chunks] + [v for v in self.chunks if v not in order]
        for variant in order:
            rows = np.concatenate([c[0] for c in self.chunks[variant]])
            variants[variant] = {
                "id": paths[rows], "group": patients[rows], "true": self.labels[rows],
                "fold": np.concatenate([np.full(len(c[0]), c[1], dtype=object) for c in self.chunks[variant]]).astype(str),
                "pred": np.concatenate([np.asarray(c[2], dtype=str) for c in self.chunks[variant]]),
                "proba": np.concatenate([c[3] for c in self.chunks[variant]])}
        for variant, entry in self.slices(order, fraction, seed).items():
            variants[variant]["calibration"] = entry
        return Predictions(variants, {"solver": self.fits, "magnifications": self.present})

    def slices(self, order: list[str], fraction: float, seed: int) -> dict[str, dict]:
        """Each variant's temperature slices: those of the fits it holds, stored in full under the first
        variant (in ``order``) each fit fed; a variant pooling fits stored elsewhere refers to them."""
        home = {i: min(fed, key=order.index) for i, fed in enumerate(self.fed) if fed}
        fits_of = {v: [i for i, fed in enumerate(self.fed) if v in fed] for v in order}
        stored = {v for v in order if fits_of[v] and all(home[i] == v for i in fits_of[v])}
        paths = self.data.records["path"].astype(str).to_numpy()
        out = {}
        for v in order:
            homes = sorted({home[i] for i in fits_of[v]}, key=order.index)
            if v not in stored and set(homes) <= stored and \
                    sorted(i for h in homes for i in fits_of[h]) == sorted(fits_of[v]):
                out[v] = pooled_slice(homes)
                continue
            held = [self.held[i] for i in fits_of[v]]
            rows = np.concatenate([h[1] for h in held]).astype(int)
            out[v] = slice_payload(paths[rows], np.concatenate([np.full(len(h[1]), h[0], dtype=object) for h in held]),
                                   self.labels[rows], np.concatenate([h[2] for h in held]), fraction=fraction, seed=seed,
                                   slice=PATIENT_SLICE)
        return out


def fold_means(columns: dict) -> tuple[float, float]:
    """(ILA, PLA) of one variant, each the mean over folds in stored (sorted) order, as the scorer does."""
    folds, true, pred, group = (np.asarray(columns[k], dtype=str) for k in ("fold", "true", "pred", "group"))
    names = sorted(set(folds))
    ila = [float(np.mean(true[folds == f] == pred[folds == f])) for f in names]
    pla = [patient_accuracy(true[folds == f], pred[folds == f], group[folds == f]) for f in names]
    return float(np.mean(ila)), float(np.mean(pla))


def mag_mean(variants: dict, names: list[str]) -> dict:
    """MPCS's 'Mean' column: the mean over magnifications of each one's fold-mean ILA and PLA."""
    means = [fold_means(variants[v]) for v in names if v in variants]
    if not means:
        return {}
    return {"accuracy": float(np.mean([m[0] for m in means])),
            "patient_accuracy": float(np.mean([m[1] for m in means])), "variants": [v for v in names if v in variants]}


@dataclass(frozen=True)
class BreakHisTask(ProbeTask):
    """Per rotation, per training magnification: ``fit_at`` fits and files its predictions."""

    def evaluate(self, data: TaskInput) -> Predictions:
        ctx = _Context.build(data, self.label_column)
        patients = data.records["patient"].astype(str).to_numpy()
        fraction, seed = self.params["calibration_slice"], self.params["calibration_seed"]
        with progress_bar(len(ctx.folds) * len(ctx.present), f"{self.name} {data.dataset}", data.progress,
                          unit="fold x mag") as bar:
            for index, fold, train, test in ctx.folds:
                for m in ctx.present:
                    train_m = train[ctx.mags[train] == m]
                    if len(train_m):
                        held = patient_slice(ctx.labels, patients, train_m, [seed, index, m], fraction)
                        self.fit_at(ctx, index, fold, m, train_m, test, held)
                    bar.update(1)
        out = ctx.predictions(self.variants, fraction, seed)
        out.extra.update(self.derived(out.variants, ctx.scored, out.extra))
        return out

    def fit_at(self, ctx: _Context, index: int, fold: str, m: int, train: np.ndarray, test: np.ndarray,
               held: np.ndarray) -> None:
        """Fit at magnification ``m`` (``held``: the temperature slice's rows, see :meth:`_Context.probe`)."""
        raise NotImplementedError



@dataclass(frozen=True)
class PerMagnification(BreakHisTask):
    """Fit and test within each magnification (breakhis-binary, breakhis-subtype); ``all`` pools the four."""

    def fit_at(self, ctx, index, fold, m, train, test, held) -> None:
        if np.any(ctx.mags[test] == m):
            fit = ctx.probe(self.params, train, test, held, fold, magnification=m)
            ctx.add_by_mag(test, fold, fit, lambda t: (mag(m), "all") if t == m else ())

    def derived(self, predictions, labels, extra) -> dict:
        """MPCS's 'Mean' column (``extra.magnification_mean``)."""
        return {"magnification_mean": mag_mean(predictions, [mag(m) for m in MAGNIFICATIONS])}


@dataclass(frozen=True)
class LimitedLabels(BreakHisTask):
    """Binary, per magnification, on nested seeded fractions of each rotation's training images."""

    param_rules = {**ProbeTask.param_rules, "fractions": int_list(1, 100).said("percentages in (0, 100]")}

    def check_params(self) -> str | None:
        fractions = self.params["fractions"]
        return super().check_params() or (None if MAIN_FRACTION in fractions else
                                          f"fractions must include {MAIN_FRACTION} (the main metric's), got {fractions!r}")

    def known_variant(self, variant: str) -> bool:
        """``<mag>-<f>pct`` for any fraction a suite may set (MPCS's 25% is not a default one)."""
        head, _, tail = variant.rpartition("-")
        return head in PER_MAG + ["all"] and tail.endswith("pct") and tail[:-3].isdigit() and 0 < int(tail[:-3]) <= 100

    def fit_at(self, ctx, index, fold, m, train, test, held) -> None:
        if not np.any(ctx.mags[test] == m):
            return
        seed = [int(ctx.data.seed), index, m]
        subsets = limited_sample(ctx.labels, ctx.data.records["path"].astype(str).to_numpy(), train,
                                 self.params["fractions"], seed)
        for f, rows in subsets.items():
            fit = ctx.probe(self.params, rows, test, held, fold, magnification=m, fraction=f, seed=seed)
            ctx.add_by_mag(test, fold, fit, lambda t, f=f: (f"{mag(m)}-{f}pct", f"all-{f}pct") if t == m else ())

    def derived(self, predictions, labels, extra) -> dict:
        """MPCS's 'Mean' column per fraction (``extra.magnification_mean``)."""
        return {"magnification_mean": {f"{f}pct": mag_mean(predictions, [f"{mag(m)}-{f}pct" for m in MAGNIFICATIONS])
                                       for f in self.params["fractions"]}}


@dataclass(frozen=True)
class CrossMagnification(BreakHisTask):
    """Fit at one magnification, test at all four; ``diag``/``offdiag`` pool same- and cross-scale tests."""

    def fit_at(self, ctx, index, fold, m, train, test, held) -> None:
        fit = ctx.probe(self.params, train, test, held, fold, magnification=m)
        ctx.add_by_mag(test, fold, fit, lambda t: (f"{mag(m)}->{mag(t)}", "diag" if t == m else "offdiag"))

    def pooled_members(self, variant: str, variants) -> list[str] | None:
        """``diag``/``offdiag`` are the rows of the same- or cross-magnification variants, pooled."""
        if variant not in ("diag", "offdiag"):
            return None
        pairs = [v.split("->") for v in variants if "->" in v]
        return [f"{a}->{b}" for a, b in pairs if (a == b) == (variant == "diag")]

    def derived(self, predictions, labels, extra) -> dict:
        """``extra.crossmag``: the 4x4 matrices (rows = train magnification) over the magnifications
        present (``extra.magnifications``) and the diagonal vs off-diagonal gap."""
        mags = list(extra.get("magnifications") or [])
        out = {"magnifications": mags, "rows": "train magnification", "columns": "test magnification", "summary": {}}
        cells = {(a, b): fold_means(predictions[f"{mag(a)}->{mag(b)}"]) for a in mags for b in mags
                 if f"{mag(a)}->{mag(b)}" in predictions}
        for k, name in enumerate(("accuracy", "patient_accuracy")):
            out[name] = [[cells[a, b][k] if (a, b) in cells else None for b in mags] for a in mags]
            diag = [v[k] for (a, b), v in cells.items() if a == b]
            off = [v[k] for (a, b), v in cells.items() if a != b]
            means = [float(np.mean(x)) if x else None for x in (diag, off)]
            gap = means[0] - means[1] if None not in means else None
            out["summary"][name] = {"diagonal": means[0], "off_diagonal": means[1], "gap": gap}
        return {"crossmag": out}


def _register(cls, name: str, description: str, main_metric: str, variants, anchor: str, **kwargs) -> None:
    TASKS.add(name, cls(name=name, version=3, description=description, needs=NEEDS, family="BreakHis",
                        protocol=f"docs/protocols-breakhis.md#{anchor}", main_metric=main_metric,
                        variants=tuple(variants), citation=CITATION, **kwargs))


PER_MAG = [mag(m) for m in MAGNIFICATIONS]
_register(PerMagnification, "breakhis-binary", "Benign vs malignant, linear probe fitted and tested within each "
          "magnification; 'all' pools the four", "all/patient_accuracy", PER_MAG + ["all"], "breakhis-binary-and-subtype",
          params={**PROBE_PARAMS, **SLICE_PARAMS}, method={**METHOD, "pooled": "all"})
_register(PerMagnification, "breakhis-subtype", "8 tumour subtypes, linear probe fitted and tested within each "
          "magnification; 'all' pools the four", "all/patient_accuracy", PER_MAG + ["all"], "breakhis-binary-and-subtype",
          label_column="fine_label", params={**PROBE_PARAMS, **SLICE_PARAMS}, method={**METHOD, "pooled": "all"})
_register(LimitedLabels, "breakhis-limited", "Benign vs malignant per magnification, probe fitted on a seeded "
          "class-stratified fraction of the training images", f"all-{MAIN_FRACTION}pct/patient_accuracy",
          [f"{v}-{f}pct" for f in FRACTIONS for v in PER_MAG + ["all"]], "breakhis-limited",
          params={**PROBE_PARAMS, **SLICE_PARAMS, "fractions": list(FRACTIONS)},
          method={**METHOD, "sampling": "training images per (rotation, magnification), stratified by label, nested",
                  "count": "ceil(fraction * n_class / 100), at least 1 per class",
                  "seed": "[run seed, rotation index, magnification]", "main_fraction": MAIN_FRACTION})
_register(CrossMagnification, "breakhis-crossmag", "Benign vs malignant, probe fitted at one magnification and "
          "tested at each of the four (4x4 matrix in extra.crossmag)", "offdiag/patient_accuracy",
          [f"{mag(a)}->{mag(b)}" for a in MAGNIFICATIONS for b in MAGNIFICATIONS] + ["diag", "offdiag"],
          "breakhis-crossmag", params={**PROBE_PARAMS, **SLICE_PARAMS},
          method={**METHOD, "pooled": {"diag": "train = test magnification", "offdiag": "train != test magnification"}})
