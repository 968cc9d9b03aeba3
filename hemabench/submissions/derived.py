"""Derived numbers re-derived, never read (``hemabench validate``, issue 23).

A number that follows from the registered split, the task parameters or the encoder's spec is
recomputed here and compared with the file, because the page shows it (or a metric is computed
from it) and the predictions' consistency checks cannot see an edit of it:

- ``extra`` numbers of the few-shot sweeps (``auc_max_n``, test and training sizes, the support
  sets' hash) from the registered split and the parameters (``Task.derived_extra``);
- the repetitions of confusion-matrix variants: exactly the task's variants, each with the
  folds ``rep000`` .. ``rep<R-1>`` of ``repetitions = R`` in the recorded parameters;
- a panel task's (blood-shift) cells: per fold exactly the registered test cells of the target
  that the mapping scores (``BloodShift.expected_cells``);
- temperature slices: every slice cell a training (or validation) record of the registered
  split of the dataset it was drawn from, for that fold;
- ``encoder_cost``: the spec-fixed fields equal the spec; measured speeds and memory finite,
  positive and below documented ceilings.

The split-dependent checks need the records (the synthetic twins and the bundled sample are
always here; real datasets under ``--data-root``); without them they are a warning, and such a
result is verified only by ``hemabench check --reproduce``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from hemabench.results.result import Result
from hemabench.submissions.layout import Problem

MAX_IMAGES_PER_S = 1e6  # no encoder embeds a million images a second on one device
MAX_GFLOPS = 1e5  # per image: a thousand times a ViT-g/14 at 224 px
MAX_MEMORY_MB = 1e8  # 100 TB
PARAMS_SLACK = 0.01  # the spec's params_m has two decimals: 0.01 M, or 1% of it


def task_of(result: Result):
    """The result's task with its recorded parameters."""
    from hemabench.tasks import TASKS

    return TASKS.get(result.task).with_params(**result.params)


@lru_cache(maxsize=32)
def materialised(dataset: str, split: str, data_root: str | None):
    """(the registered split materialised from the local records, the discovery), or None when the
    dataset is not available here; built once per process (the fingerprint check uses it too)."""
    from hemabench.datasets import load_dataset
    from hemabench.errors import DatasetNotFound
    from hemabench.splits import MaterialisedSplit, get_rule

    try:
        discovery = load_dataset(dataset, data_root=data_root)
    except DatasetNotFound:
        return None
    return MaterialisedSplit.build(dataset, get_rule(dataset, split), discovery.records), discovery


@lru_cache(maxsize=32)
def split_input(dataset: str, split: str, data_root: str | None):
    """A TaskInput without embeddings (records, parts, rotations) of a registered split, from the
    local records; None when the dataset is not available here."""
    from hemabench.tasks.base import TaskInput

    built = materialised(dataset, split, data_root)
    if built is None:
        return None
    split_, discovery = built
    n = len(discovery.records)
    return TaskInput(features=np.zeros((n, 0), dtype=np.float32), records=discovery.records,
                     parts=split_.assignment["part"].to_numpy(), rotations=split_.rule.rotations(),
                     valid=np.ones(n, dtype=bool), dataset=dataset)


def task_input(result: Result, data_root: str | None):
    """(the result's split as a TaskInput with its source and panel, or None, which dataset is missing)."""
    from dataclasses import replace

    def one(member: dict):
        return split_input(str(member.get("dataset")), str(member.get("name")), data_root)

    main = one({**result.split, "dataset": result.dataset})
    if main is None:
        return None, result.dataset
    source = one(result.source_split) if result.source_split else None
    if result.source_split and source is None:
        return None, result.source_split.get("dataset")
    panel = {}
    for member in result.panel_splits:
        panel[str(member.get("dataset"))] = one(member)
        if panel[str(member.get("dataset"))] is None:
            return None, member.get("dataset")
    return replace(main, source=source, panel=panel or None), None


def extra_problems(task, data, result: Result, shown: str) -> list[Problem]:
    """Each ``extra`` number the split and parameters fix equals the re-derived one."""
    derive = getattr(task, "derived_extra", None)
    if derive is None:
        return []
    extra, problems = result.extra, []
    for key, wanted in derive(data).items():
        if extra.get(key) != wanted or isinstance(extra.get(key), bool):
            problems.append(Problem(shown, f"extra.{key}", f"stored {extra.get(key)!r} but the registered split and "
                                                           f"the task parameters give {wanted!r}"))
    return problems


def repetition_problems(task, result: Result, shown: str) -> list[Problem]:
    """Confusion-matrix variants: exactly the task's, each with one matrix per recorded repetition."""
    expected = getattr(task, "confusion_variants", None)
    if not task.stores_confusions or expected is None:
        return []
    stored = {v: c for v, c in result.predictions.items() if isinstance(c, dict) and "confusions" in c}
    wanted, problems = expected(), []
    if set(stored) != wanted:
        missing, extra = sorted(wanted - set(stored)), sorted(set(stored) - wanted)
        problems.append(Problem(shown, "predictions", f"confusion variants differ from the task's (missing {missing[:3]}, "
                                                      f"not the task's {extra[:3]})"))
    folds = [f"rep{r:03d}" for r in range(task.params["repetitions"])]
    for variant, columns in stored.items():
        if list(map(str, columns.get("fold") or [])) != folds or len(columns.get("confusions") or []) != len(folds):
            problems.append(Problem(shown, f'predictions["{variant}"].fold', f"must be {folds[0]} .. {folds[-1]}, one "
                                    f"confusion matrix each (repetitions = {len(folds)} in the parameters)"))
            break
    return problems


def panel_problems(task, data, result: Result, shown: str) -> list[Problem]:
    """A panel task: per variant and fold exactly the registered test cells the mapping scores."""
    cells = getattr(task, "expected_cells", None)
    if cells is None or not task.panel_for(result.dataset):
        return []
    expected, problems = cells(data), []
    for variant, folds in expected.items():
        columns = result.variant_predictions(variant) or {}
        frame = pd.DataFrame({"id": list(map(str, columns.get("id") or [])), "fold": list(map(str, columns.get("fold") or [])),
                              "true": list(map(str, columns.get("true") or []))})
        stored = {fold: set(zip(rows["id"], rows["true"])) for fold, rows in frame.groupby("fold")}
        for fold in sorted(set(stored) | set(folds)):
            have, want = stored.get(fold, set()), folds.get(fold, set())
            if have != want:
                problems.append(Problem(shown, f'predictions["{variant}"] fold {fold}',
                                        f"{len(have)} cells, not the {len(want)} registered test cells the mapping "
                                        f"scores ({len(want - have)} missing, {len(have - want)} not among them)"))
    return problems


def _training_ids(data) -> dict[str, set[str]]:
    """Per test part of each rotation: the ids of that rotation's training records, validation parts
    included (a MIL task's slice is its early-stopping fold), and of their patients (MIL units)."""
    records = data.records
    units = [records["path"].to_numpy().astype(str)]
    if "patient" in records and records["patient"].notna().all():
        units.append(records["patient"].to_numpy().astype(str))
    out = {}
    for rotation in data.rotations:
        train = np.isin(data.parts, [p for role, parts in rotation.items() if role != "test" for p in parts])
        out["+".join(rotation["test"])] = {i for column in units for i in column[train]}
    return out


def _slice_sources(fold: str, data) -> list[tuple[object, str | None]]:
    """(TaskInput, test part or None) a slice cell of ``fold`` may come from."""
    panel = {data.dataset: data, **(data.panel or {})}
    if "->" in fold:
        return [(panel.get(fold.split("->", 1)[0]), None)]
    if fold in panel:
        return [(panel[fold], None)]
    return [(d, fold.split("/", 1)[0]) for d in (data, data.source) if d is not None]


def slice_problems(data, result: Result, shown: str) -> list[Problem]:
    """Every temperature-slice cell is a training record of the registered split it was drawn from."""
    from hemabench.results.calibration import resolve_slices

    try:
        predictions = resolve_slices(result.predictions)
    except (ValueError, TypeError, AttributeError):
        return []  # reported by the integrity checks
    problems, training = [], {}
    for variant, columns in predictions.items():
        cal = columns.get("calibration") if isinstance(columns, dict) else None
        if not isinstance(cal, dict) or "id" not in cal:
            continue
        strays = []
        for cell, fold in zip(map(str, cal.get("id") or []), map(str, cal.get("fold") or [])):
            allowed = False
            for inp, key in _slice_sources(fold, data):
                if inp is None:
                    continue
                if inp.dataset not in training:
                    training[inp.dataset] = _training_ids(inp)
                ids = training[inp.dataset]
                part = key if key in ids else (next(iter(ids)) if len(ids) == 1 else None)
                allowed = allowed or (part is not None and cell in ids[part])
            if not allowed:
                strays.append((cell, fold))
        if strays:
            problems.append(Problem(shown, f'predictions["{variant}"].calibration',
                                    f"{len(strays)} slice cells are not training records of the registered split "
                                    f"(e.g. {strays[0][0]!r} in {strays[0][1]!r})"))
    return problems


def _bad_number(value, low: float, high: float, allow_none: bool = True, integer: bool = False) -> bool:
    if value is None:
        return not allow_none
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        return True
    return not (math.isfinite(value) and low <= value <= high)


def cost_problems(result: Result, shown: str) -> list[Problem]:
    """``encoder_cost``: parameters, embedding size and input size are the spec's; measurements plausible."""
    from hemabench.encoders import ENCODERS

    cost = result.encoder_cost
    if not isinstance(cost, dict):
        return []
    name = result.encoder
    spec, problems = ENCODERS.get(name).to_dict() if name in ENCODERS else result.encoder_spec, []
    for field, key in (("embedding_dim", "embed_dim"), ("input_size", "input_size")):
        if key in spec and cost.get(field) != spec[key]:
            problems.append(Problem(shown, f"encoder_cost.{field}", f"{cost.get(field)!r} is not the spec's {key} "
                                                                    f"{spec[key]!r}"))
    params = cost.get("parameters")
    if _bad_number(params, 0, 1e13, allow_none=False, integer=True):
        problems.append(Problem(shown, "encoder_cost.parameters", f"{params!r} is not a parameter count"))
    elif isinstance(spec.get("params_m"), (int, float)) and \
            abs(params / 1e6 - spec["params_m"]) > max(PARAMS_SLACK, PARAMS_SLACK * spec["params_m"]):
        problems.append(Problem(shown, "encoder_cost.parameters", f"{params} is not the spec's params_m "
                                                                  f"{spec['params_m']} M"))
    gflops = cost.get("gflops_per_image")
    weights = spec["params_m"] * 1e6 if isinstance(spec.get("params_m"), (int, float)) else params
    floor = weights / 1e9 if isinstance(weights, (int, float)) and not isinstance(weights, bool) else 0  # each used once
    if _bad_number(gflops, max(floor, 1e-12), MAX_GFLOPS):
        problems.append(Problem(shown, "encoder_cost.gflops_per_image", f"{gflops!r} is not plausible: each of the "
                                f"{floor * 1e9:.0f} parameters is used at least once per image, at most {MAX_GFLOPS:g} GFLOPs"))
    for field, high in (("forward_images_per_s", MAX_IMAGES_PER_S), ("extraction_images_per_s", MAX_IMAGES_PER_S),
                        ("peak_memory_mb", MAX_MEMORY_MB)):
        value = cost.get(field)
        if _bad_number(value, 1e-9, high):
            problems.append(Problem(shown, f"encoder_cost.{field}", f"{value!r} is not a plausible measurement "
                                                                    f"(finite, positive, at most {high:g})"))
    for field in ("forward_batch_size", "extraction_images"):
        if _bad_number(cost.get(field), 0, 1e9, integer=True):
            problems.append(Problem(shown, f"encoder_cost.{field}", f"{cost.get(field)!r} is not a count"))
    return problems


def derived_problems(result: Result, shown: str, data_root: str | None) -> list[Problem]:
    """Every derived number of the result against its re-derivation (see the module docstring)."""
    task = task_of(result)
    problems = cost_problems(result, shown) + repetition_problems(task, result, shown)
    data, missing = task_input(result, data_root)
    if data is None:
        return problems + [Problem(shown, "extra", f"split-derived numbers, panel cells and temperature slices not "
                                                   f"re-derived: {missing} is not available here (--data-root)",
                                   "warning")]
    return problems + extra_problems(task, data, result, shown) + panel_problems(task, data, result, shown) \
        + slice_problems(data, result, shown)
