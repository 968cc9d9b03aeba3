"""A stored result against its re-run: the tolerance policy of ``hemabench check`` and ``check --reproduce``.

Every field a reader sees is compared, not only the prediction column. A frozen-encoder probe
is not bit-reproducible across CPUs (an L-BFGS fit's path depends on the floating-point
summation order of the machine, and a fit stopped at ``max_iter`` stops elsewhere), so the
policy says what may differ, and by how much (measured on the committed references, see
docs/integrity.md):

- **exact**: everything that is not a solver output: task, split, params, labels, encoder,
  every prediction cell's id, fold and true label (the same cells, no more, no fewer), every
  ``extra`` string, integer and list length, the spec-fixed ``encoder_cost`` fields;
- **predictions**: per variant at most ``tolerance`` (default 5%) of the cells may predict
  another class, and only where the re-run itself is nearly tied (its probability of the
  stored class within ``near_tie`` of its top probability); a confusion matrix counts each
  moved sample as one differing cell;
- **probabilities** (and temperature-slice probabilities): each within ``proba`` of the
  re-run's, and per variant on average within ``proba_mean``;
- **numbers**: every metric's mean within ``number`` (relative above 1, e.g. NLL; a per-class
  metric within ``per_class``) and every other ``extra`` number within ``number``; the rest of
  ``metrics``, ``per_class`` and ``confusion_matrix`` are functions of the predictions that
  ``validate`` recomputes exactly;
- the bounds are ``CONVERGED``, or the looser ``STOPPED`` where a solver record of the stored
  result or the re-run says a fit stopped at ``max_iter`` (its optimum was not reached, so where
  it stopped depends on the machine);
- the bounds are ``ACROSS_MACHINES`` when the re-run's machine is not the stored result's (another
  processor model, CPU-math setting or numerical library version, ``same_machine``): any prediction
  may then move (10% of a variant's cells at most), and a per-class metric by one cell of its class;
- **not compared** (measurements of the machine): ``provenance``, ``verification``, the
  measured speeds and memory of ``encoder_cost`` (plausibility-checked by ``validate``), and a
  solver's iteration count and stopping status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hemabench.results.result import Result
from hemabench.submissions.layout import shortened

# Per-cell numbers other than predictions and probabilities: robustness's clean-vs-perturbed
# cosine agrees to 3 decimals between bf16 (GPU) and fp32 (CPU) embeddings.
CELL_ATOL = {"cosine": 5e-4}
TOLERANCE = 0.05  # share of a variant's prediction cells that may differ (near-ties only)


@dataclass(frozen=True)
class Bounds:
    """How far a re-run may be from the stored result (module docstring, docs/integrity.md)."""

    share: float  # smallest allowed share of differing prediction cells (``--tolerance`` may raise it)
    near_tie: float  # a differing cell: the re-run's probability of the stored class within this of its top one
    proba: float  # one probability (1: not bounded one by one)
    proba_mean: float  # the mean absolute difference of a variant's probabilities
    number: float  # a metric's mean (relative above 1: NLL), any other floating-point number of ``extra``
    per_class: float  # the mean of a per-class metric (``shift/drop_sensitivity_<class>``): few cells, noisier
    label: str  # what the summary line says of them
    one_class_cell: bool = False  # a per-class metric may also move by one cell of its class (another machine)


CONVERGED = Bounds(share=0.0, near_tie=0.1, proba=0.1, proba_mean=0.005, number=0.05, per_class=0.1,
                   label="converged bounds")
# A fit stopped at max_iter did not reach its optimum: where it stops depends on the machine's
# floating-point path (measured: 8 of 144 BreakHis-40x predictions, probabilities 0.5 apart, NLL 0.14).
STOPPED = Bounds(share=0.1, near_tie=0.5, proba=1.0, proba_mean=0.02, number=0.2, per_class=0.2,
                 label="a fit stopped at max_iter: looser bounds")
# Another machine: the same inputs reach the solvers a few ULPs apart, and a weakly regularised
# probe on 2 cells per class turns that into a moved prediction (measured on the demo, Intel Xeon
# vs AMD EPYC before CPU math was pinned: 1 of 16 robustness cells per variant, a non-tied
# BreakHis cell of a fit stopped at max_iter, per-class sensitivities 0.5 apart on 2-cell classes).
ACROSS_MACHINES = Bounds(share=0.1, near_tie=1.0, proba=1.0, proba_mean=0.02, number=0.2, per_class=0.2,
                         label="another machine: cross-machine bounds", one_class_cell=True)
MACHINE_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn")  # whose kernels make the numbers


def same_machine(stored: Result, fresh: Result) -> bool:
    """Whether two results' provenance names the same processor, CPU-math setting and numerical
    library versions (an older result that names no processor counts as another machine)."""
    a, b = stored.provenance, fresh.provenance
    packages = [{k: (p.get("packages") or {}).get(k) for k in MACHINE_PACKAGES} for p in (a, b)]
    return a.get("cpu") is not None and a.get("cpu") == b.get("cpu") and \
        a.get("cpu_math") == b.get("cpu_math") and packages[0] == packages[1]


def stopped_at_max_iter(result: Result) -> bool:
    """True when a solver record of the result's ``extra`` says a fit stopped at ``max_iter``."""
    def walk(value) -> bool:
        if isinstance(value, dict):
            return value.get("status") == "max_iter" or any(walk(v) for v in value.values())
        return isinstance(value, list) and any(walk(v) for v in value)
    return walk(result.extra)
EXACT_RTOL = 1e-9  # floating-point numbers that are not solver outputs (spec values, encoder_cost GFLOPs)
NOT_COMPARED = frozenset({"provenance", "verification"})
MACHINE_KEYS = frozenset({"n_iter", "status", "cpu_threads"})  # per fit: how far the solver went on this machine
SPEC_COST = ("parameters", "embedding_dim", "input_size", "gflops_per_image", "flops_note")


def tolerance_problem(value) -> str | None:
    """Why ``value`` cannot be a tolerance (a share of cells: finite, 0 <= t < 1), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value < 1:
        return f"tolerance must be a finite share of cells, 0 <= t < 1, got {value!r}"
    return None


@dataclass
class Comparison:
    """What was compared and every difference outside the policy, as (field, message)."""

    tolerance: float = TOLERANCE
    bounds: Bounds = CONVERGED
    cells: int = 0
    differing: int = 0
    numbers: int = 0
    largest_proba: float = 0.0
    largest_metric: float = 0.0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.problems.append((where, message))

    def summary(self) -> str:
        return (f"{self.cells - self.differing}/{self.cells} prediction cells equal, {self.numbers} numbers compared "
                f"(largest probability difference {self.largest_proba:.4f}, metric {self.largest_metric:.4f}; "
                f"{self.bounds.label})")


def _show(value) -> str:
    return shortened(value, 60)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare_values(a, b, where: str, out: Comparison, atol: float = 0.0) -> None:
    """Recursive comparison: strings, integers and structure exact; floats within ``atol`` (or
    ``EXACT_RTOL`` when 0); the machine-dependent keys of a solver record skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key in MACHINE_KEYS:
                continue
            if key not in a or key not in b:
                out.add(f"{where}.{key}", f"is {'only stored' if key in a else 'missing; the re-run gives it'}")
            else:
                compare_values(a[key], b[key], f"{where}.{key}", out, atol)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.add(where, f"holds {len(a)} items, the re-run {len(b)}")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                compare_values(x, y, f"{where}[{i}]", out, atol)
    elif _is_number(a) and _is_number(b) and (isinstance(a, float) or isinstance(b, float)):
        out.numbers += 1
        if math.isnan(a) and math.isnan(b):
            return
        if not math.isclose(a, b, rel_tol=0 if atol else EXACT_RTOL, abs_tol=atol):
            out.add(where, f"stored {_show(a)}, the re-run gives {_show(b)}"
                           + (f" (|Δ| {abs(a - b):.4g} > {atol})" if atol else ""))
    elif a != b or type(a) is not type(b):
        out.add(where, f"stored {_show(a)}, the re-run gives {_show(b)}")


def _proba(stored, fresh, where: str, out: Comparison) -> None:
    try:
        a, b = np.asarray(stored, dtype=float), np.asarray(fresh, dtype=float)
    except (TypeError, ValueError):
        out.add(where, "is not a matrix of numbers")
        return
    if a.shape != b.shape:
        out.add(where, f"has shape {a.shape}, the re-run {b.shape}")
        return
    if not a.size:
        return
    diff = np.abs(a - b)
    diff[np.isnan(a) & np.isnan(b)] = 0
    out.numbers += int(a.size)
    worst = float(np.nanmax(np.where(np.isnan(diff), np.inf, diff)))
    out.largest_proba = max(out.largest_proba, worst)
    if worst > out.bounds.proba:
        row = int(np.unravel_index(np.argmax(np.where(np.isnan(diff), np.inf, diff)), diff.shape)[0])
        out.add(where, f"row {row} differs from the re-run's by {worst:.4f} (> {out.bounds.proba})")
    elif float(diff.mean()) > out.bounds.proba_mean:
        out.add(where, f"differ from the re-run's by {float(diff.mean()):.4f} on average (> {out.bounds.proba_mean})")


def _rows(columns: dict) -> dict[tuple[str, str], int]:
    return {(str(i), str(f)): n for n, (i, f) in enumerate(zip(columns.get("id") or [], columns.get("fold") or []))}


def _cell_variant(a: dict, b: dict, labels: list[str], where: str, out: Comparison) -> tuple[int, int]:
    """(cells, differing cells) of a per-sample variant; the same cells, near-tie disagreements only."""
    rows_a, rows_b = _rows(a), _rows(b)
    if set(rows_a) != set(rows_b):
        extra, missing = sorted(set(rows_a) - set(rows_b)), sorted(set(rows_b) - set(rows_a))
        out.add(where, f"holds {len(extra)} cells the re-run does not test and lacks {len(missing)} it tests"
                       f" (e.g. {(extra or missing)[0]})")
        return len(rows_a), 0
    order = [rows_b[key] for key in rows_a]  # the re-run's row of each stored row
    column = {k: [v[i] for i in order] if isinstance(v, list) and len(v) == len(order) else v
              for k, v in b.items() if k != "calibration"}
    differing, index = [], {str(label): i for i, label in enumerate(labels)}
    for n, key in enumerate(rows_a):
        if str(a["true"][n]) != str(column["true"][n]):
            out.add(where, f"cell {key} has true label {a['true'][n]!r}, the registered data {column['true'][n]!r}")
            return len(rows_a), 0
        if "pred" in a and str(a["pred"][n]) != str(column["pred"][n]):
            differing.append(n)
    for n in differing:
        probs = column.get("proba")
        if probs is not None and str(a["pred"][n]) in index:
            p = np.asarray(probs[n], dtype=float)
            gap = float(p.max() - p[index[str(a["pred"][n])]])
            if gap > out.bounds.near_tie:
                out.add(where, f"cell {list(rows_a)[n]} predicts {a['pred'][n]!r}, the re-run {column['pred'][n]!r} "
                               f"with a margin of {gap:.3f} (> {out.bounds.near_tie}: not a near-tie)")
    if "proba" in a or "proba" in column:
        _proba(a.get("proba"), column.get("proba"), f"{where}.proba", out)
    for key in sorted(set(a) | set(column), key=str):
        if key not in ("id", "fold", "true", "pred", "proba", "calibration"):
            compare_values(a.get(key), column.get(key), f"{where}.{key}", out, CELL_ATOL.get(key, 0.0))
    return len(rows_a), len(differing)


def _slice(a, b, where: str, out: Comparison) -> None:
    """A temperature slice: the same cells in the same order, probabilities within the policy."""
    if not (isinstance(a, dict) and isinstance(b, dict)) or "proba" not in a:
        compare_values(a, b, where, out)
        return
    compare_values({k: v for k, v in a.items() if k != "proba"}, {k: v for k, v in b.items() if k != "proba"},
                   where, out)
    if not any(w.startswith(where) for w, _ in out.problems):
        _proba(a["proba"], b.get("proba"), f"{where}.proba", out)


def _confusions(a: dict, b: dict, where: str, out: Comparison) -> tuple[int, int]:
    """(samples, moved samples) of a confusion-matrix stack: the same folds, each moved sample one cell."""
    compare_values(a.get("fold"), b.get("fold"), f"{where}.fold", out)
    try:
        x, y = np.asarray(a.get("confusions"), dtype=float), np.asarray(b.get("confusions"), dtype=float)
    except (TypeError, ValueError):
        out.add(f"{where}.confusions", "are not matrices of numbers")
        return 0, 0
    if x.shape != y.shape:
        out.add(f"{where}.confusions", f"have shape {x.shape}, the re-run's {y.shape}")
        return int(np.nansum(x)), 0
    if not np.array_equal(x.sum(axis=-1), y.sum(axis=-1)):
        out.add(f"{where}.confusions", "rows do not sum to the re-run's per-class test counts")
    return int(y.sum()), int(round(float(np.abs(x - y).sum()) / 2))


def compare_predictions(stored: Result, fresh: Result, out: Comparison) -> None:
    """Every variant: the same cells, predictions within the tolerance, probabilities within the policy."""
    a, b, labels = stored.predictions, fresh.predictions, fresh.labels
    for variant in sorted(set(a) | set(b)):
        where = f'predictions["{variant}"]'
        if variant not in a or variant not in b:
            out.add(where, "is only stored" if variant in a else "is missing; the re-run gives it")
            continue
        if "id" in a[variant] and "id" in b[variant]:
            cells, differing = _cell_variant(a[variant], b[variant], labels, where, out)
            if "calibration" in a[variant] or "calibration" in b[variant]:
                _slice(a[variant].get("calibration"), b[variant].get("calibration"), f"{where}.calibration", out)
        elif "confusions" in a[variant] and "confusions" in b[variant]:
            cells, differing = _confusions(a[variant], b[variant], where, out)
        else:
            compare_values(a[variant], b[variant], where, out)
            continue
        out.cells, out.differing = out.cells + cells, out.differing + differing
        share = max(out.tolerance, out.bounds.share)
        if differing > math.floor(share * cells):
            out.add(where, f"{differing} of {cells} predictions are not what the re-run gives "
                           f"(tolerance {share:.2%})")


def _class_cells(stored: Result, key: str, labels: list[str]) -> int:
    """Test cells of the class a per-class metric ``<variant>/<name>_<class>`` is about (0: unknown)."""
    variant, _, name = key.rpartition("/")
    label = next((x for x in sorted(labels, key=len, reverse=True) if name.endswith(f"_{x}")), None)
    true = (stored.variant_predictions(variant) or {}).get("true")
    return sum(str(t) == label for t in true) if label is not None and isinstance(true, list) else 0


def _metrics(a: dict, b: dict, labels: list[str], out: Comparison, stored: Result) -> None:
    per_class = tuple(f"_{label}" for label in labels)
    for key in sorted(set(a) | set(b)):
        where = f'metrics["{key}"].mean'
        if key not in a or key not in b:
            out.add(f'metrics["{key}"]', "is only stored" if key in a else "is missing; the re-run gives it")
            continue
        x, y = (a[key] or {}).get("mean"), (b[key] or {}).get("mean")
        if _is_number(x) and _is_number(y) and math.isfinite(x) and math.isfinite(y):
            out.numbers += 1
            out.largest_metric = max(out.largest_metric, abs(x - y))
            bound = (out.bounds.per_class if key.endswith(per_class) else out.bounds.number) * max(1.0, abs(x))
            if out.bounds.one_class_cell and key.endswith(per_class) and (n := _class_cells(stored, key, labels)):
                bound = max(bound, 1.0 / n + 1e-9)  # one cell of its class may move on another machine
            if abs(x - y) > bound:
                out.add(where, f"moved {x:.4f} -> {y:.4f} on re-run (|Δ| {abs(x - y):.4f} > {bound})")
        else:
            compare_values(x, y, where, out)


def compare_results(stored: Result, fresh: Result, tolerance: float = TOLERANCE,
                    across_machines: bool = False) -> Comparison:
    """The whole stored result against the re-run's, under the policy of the module docstring
    (``across_machines``: the re-run ran on another machine, see ``same_machine``)."""
    fresh = fresh.as_written()  # as the runner writes it (numpy values as JSON)
    stopped = stopped_at_max_iter(stored) or stopped_at_max_iter(fresh)
    out = Comparison(tolerance=tolerance, bounds=ACROSS_MACHINES if across_machines else STOPPED if stopped else CONVERGED)
    compare_predictions(stored, fresh, out)
    _metrics(stored.metrics, fresh.metrics, fresh.labels, out, stored)
    compare_values(sorted(stored.per_class), sorted(fresh.per_class), "per_class", out)
    compare_values(stored.confusion_matrix.get("labels"), fresh.confusion_matrix.get("labels"),
                   "confusion_matrix.labels", out)
    compare_values(stored.extra, fresh.extra, "extra", out, atol=out.bounds.number)
    cost_a, cost_b = stored.encoder_cost or {}, fresh.encoder_cost or {}
    compare_values({k: cost_a.get(k) for k in SPEC_COST}, {k: cost_b.get(k) for k in SPEC_COST}, "encoder_cost", out)
    derived = {"predictions", "metrics", "per_class", "confusion_matrix", "extra", "encoder_cost"}
    a, b = stored.document, fresh.document  # every other field, compared as it is stored
    for key in sorted((set(a) | set(b)) - derived - NOT_COMPARED):
        compare_values(a.get(key), b.get(key), key, out)
    return out
