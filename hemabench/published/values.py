"""Published results typed from papers: ``benchmarks/reported/<paper>.yaml``, versioned data.

A reported value is a fact with a citation (paper, table), never a hemabench run: the
leaderboard shows it with a "paper" badge beside the runs of the same board and never ranks
it with them. Each file mirrors its paper's tables: a *group* is one table block on one
task and dataset; its ``columns`` name hemabench metric keys (``<variant>/<metric>``) and
each row lists one encoder's values in the paper's column order, either a number or
``[mean, sd]``, in the paper's unit (``percent`` or ``fraction``; stored as fractions), each
within its unit's range (``bounds_problem``).
An encoder is a registered name or ``external:<name>`` described in ``external_encoders``.

Files arrive in pull requests, so they are read with the one YAML loader (``untrusted.load_yaml``), which
refuses anchors and aliases (no billion-laughs expansion) and checked against a JSON schema before use.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

from hemabench.errors import HemabenchError
from hemabench.files.untrusted import load_yaml
from hemabench.paths import benchmarks_dir
from hemabench.published.protocol import SCHEMA as PROTOCOL_SCHEMA
from hemabench.published.protocol import Protocol, unknown_params
from hemabench.results.result import Result

EXTERNAL = "external:"
TIER = "paper"  # the trust tier of every reported value (issue 14's badges read Reported.tier)
MAX_BYTES = 512 * 1024
SENSITIVITY = "sensitivity_"
PER_CLASS = (SENSITIVITY, "precision_", "f1_")  # per-class metric keys: <variant>/<prefix><CLASS>

_NUMBER = {"type": "number"}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["paper", "citation", "groups"],
    "properties": {
        "paper": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
        "citation": {"type": "string", "minLength": 10},
        "link": {"type": "string"},
        "external_encoders": {"type": "object", "additionalProperties": {"type": "string", "minLength": 5},
                              "propertyNames": {"pattern": "^external:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}},
        "groups": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["table", "task", "dataset", "unit", "note", "protocol", "columns", "rows"],
            "properties": {
                "table": {"type": "string", "pattern": "^Table [0-9A-Z.]+$"},
                "task": {"type": "string"},
                "dataset": {"type": "string"},
                "unit": {"enum": ["percent", "fraction"]},
                "note": {"type": "string", "minLength": 10},
                "protocol": PROTOCOL_SCHEMA,
                "columns": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^.+/[a-z0-9_A-Z]+$"}},
                "rows": {"type": "object", "minProperties": 1, "additionalProperties": {
                    "type": "array", "items": {"oneOf": [
                        _NUMBER, {"type": "null"},
                        {"type": "array", "prefixItems": [_NUMBER, _NUMBER], "minItems": 2, "maxItems": 2}]}}},
            }}},
    },
}


@dataclass(frozen=True)
class Reported:
    """One published number: ``value`` and ``sd`` are fractions (like hemabench's metrics)."""

    paper: str
    citation: str
    table: str
    encoder: str
    encoder_description: str  # the external encoder's description ("" for a registered one)
    task: str
    dataset: str
    metric: str
    value: float
    sd: float | None
    note: str
    protocol: Protocol = Protocol()
    tier: str = TIER

    @property
    def external(self) -> bool:
        return self.encoder.startswith(EXTERNAL)

    @property
    def source(self) -> str:
        return f"{self.paper}, {self.table}"


def read_file(path: Path) -> list[Reported]:
    """One paper's file -> its reported values; a clear one-line error naming the file otherwise."""
    path = Path(path)
    try:  # a regular UTF-8 file of at most MAX_BYTES without anchors or aliases, else one line naming it
        raw = load_yaml(path, MAX_BYTES)
    except OSError as exc:
        raise HemabenchError(f"{path}: not readable ({exc.strerror or exc})") from None
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "top level"
        raise HemabenchError(f"{path}: {where}: {errors[0].message.splitlines()[0]}")
    if raw["paper"] != path.stem:
        raise HemabenchError(f"{path}: paper {raw['paper']!r} must equal the file name {path.stem!r}")
    external = raw.get("external_encoders") or {}
    out = []
    for g, group in enumerate(raw["groups"]):
        scale = 100.0 if group["unit"] == "percent" else 1.0
        protocol = Protocol.from_dict(group["protocol"])
        for encoder, cells in group["rows"].items():
            where = f"{path}: groups/{g}/rows/{encoder}"
            if encoder.startswith(EXTERNAL) and encoder not in external:
                raise HemabenchError(f"{where}: external encoder without a description in external_encoders")
            if len(cells) != len(group["columns"]):
                raise HemabenchError(f"{where}: {len(cells)} values for {len(group['columns'])} columns")
            for metric, cell in zip(group["columns"], cells):
                if cell is None:  # not printed in the paper
                    continue
                value, sd = (cell if isinstance(cell, list) else (cell, None))
                problem = bounds_problem(value, sd, group["unit"])
                if problem:
                    raise HemabenchError(f"{where}: {metric} {problem}")
                out.append(Reported(raw["paper"], raw["citation"].strip(), group["table"], encoder,
                                    external.get(encoder, ""), group["task"], group["dataset"], metric,
                                    value / scale, None if sd is None else sd / scale, group["note"].strip(),
                                    protocol))
    keys = [(r.encoder, r.task, r.dataset, r.metric, r.table) for r in out]
    if len(keys) != len(set(keys)):
        raise HemabenchError(f"{path}: the same encoder, task, dataset and metric typed twice in one table")
    return out


def bounds_problem(value: float, sd: float | None, unit: str) -> str | None:
    """Every metric a paper may report (accuracies, F1, AUCs, sensitivities) is a fraction in
    [0, 1]; in ``percent`` that is [0, 100]. An sd lies in the same range. 500 (a percent typed
    twice), -20 or 1e300 once reached the board as "500.0 paper"."""
    top = 100.0 if unit == "percent" else 1.0
    if not all(math.isfinite(v) for v in (value, 0.0 if sd is None else sd)):
        return "is not a finite number"
    if not 0.0 <= value <= top:
        hint = " (is the unit percent?)" if unit == "fraction" and 1.0 < value <= 100.0 else ""
        return f"value {value} is outside [0, {top:g}] for unit {unit}{hint}"
    if sd is not None and not 0.0 <= sd <= top:
        return f"sd {sd} is outside [0, {top:g}] for unit {unit}"
    return None


def reported_dir() -> Path:
    return benchmarks_dir() / "reported"


def load_reported(folder: Path | None = None) -> list[Reported]:
    """Every paper's values, in file order; an empty list when the folder is absent."""
    folder = Path(folder) if folder is not None else reported_dir()
    if not folder.is_dir():
        return []
    return [r for path in sorted(folder.glob("*.yaml")) if not path.is_symlink() for r in read_file(path)]


def name_problems(values: list[Reported]) -> list[str]:
    """Names that the registries do not know: encoder, task, dataset (for the task), metric."""
    from hemabench.datasets import DATASETS
    from hemabench.encoders import ENCODERS
    from hemabench.results.metrics import known_metric_names
    from hemabench.tasks import TASKS

    problems, encoders, tasks = [], set(ENCODERS.names()), set(TASKS.names())
    superclasses = functools.cache(_superclasses)  # per dataset, read once per call (a test moves the folder)
    for r in values:
        where = f"{r.source}: {r.encoder} {r.task} {r.dataset} {r.metric}"
        if not r.external and r.encoder not in encoders:
            problems.append(f"{where}: unknown encoder (register it or mark it {EXTERNAL}<name>)")
        if r.task not in tasks:
            problems.append(f"{where}: unknown task")
            continue
        task = TASKS.get(r.task)
        if r.dataset not in task.datasets:
            problems.append(f"{where}: task {r.task} does not run on dataset {r.dataset}")
            continue
        if unknown_params(r.protocol, task.params):
            problems.append(f"{where}: protocol names parameters {unknown_params(r.protocol, task.params)} "
                            f"that {r.task} does not have")
        variant, _, name = r.metric.rpartition("/")
        if not task.known_variant(variant):
            problems.append(f"{where}: {variant!r} is not a variant of {r.task}")
        prefix = next((p for p in PER_CLASS if name.startswith(p)), None)
        if prefix:
            if name[len(prefix):] not in set(DATASETS.get(r.dataset).classes) | superclasses(r.dataset):
                problems.append(f"{where}: {name[len(prefix):]!r} is not a class of {r.dataset}")
        elif name not in known_metric_names():
            problems.append(f"{where}: unknown metric {name!r}")
        if not 0.0 <= r.value <= 1.0:
            problems.append(f"{where}: value {r.value} outside [0, 1] after unit conversion")
    return problems


def _superclasses(dataset: str) -> set[str]:
    """Superclass names the versioned class mappings report for ``dataset`` (e.g. MYC)."""
    names = set()
    for path in sorted((benchmarks_dir() / "mappings").glob("*.yaml")):
        targets = load_yaml(path, mapping=True).get("targets") or {}
        names |= set((targets.get(dataset) or {}).get("superclasses") or {})
    return names


def run_value(result: Result, metric: str) -> dict | None:
    """A run's entry (a Result) for a reported metric key: its metrics, or a per-class
    sensitivity of the detail variant (``<variant>/sensitivity_<CLASS>``) with the spread over folds.
    Per-class precision and F1 have no stored interval: they are shown, never paired (None)."""
    if metric in result.metrics:
        return result.metrics[metric]
    variant, _, name = metric.rpartition("/")
    if variant != result.detail_variant or not name.startswith(SENSITIVITY):
        return None
    stats = result.per_class.get(name[len(SENSITIVITY):])
    folds = (stats or {}).get("sensitivity_folds") or {}
    if not stats or not folds.get("ci95"):
        return None
    return {"mean": stats["sensitivity"], "std": folds.get("std", 0.0), "ci95": folds["ci95"]}
