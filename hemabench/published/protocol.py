"""The protocol a published number corresponds to, and whether a board's runs follow it.

A paper's value is comparable with a hemabench run only where the run was made under the
same protocol: the task version (a range, or any), the task parameters the value assumes
(``defaults``: the registered ones, as the full protocol runs them; or named keys), the
hemabench split it stands on, the class set the paper scores and, for an encoder whose
published weights differ from the registered spec's, those weights. ``mismatches`` lists
every way a run departs from it (empty: pair it); ``differences`` are what stays different
even on a matching board (the paper's own split, training overlap, a fine-tuned model) and
is shown on the row. docs/leaderboard.md#published-results-reproduced-vs-reported has the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hemabench.files.canonical import same_json
from hemabench.files.untrusted import load_yaml
from hemabench.results.result import Result

DEFAULTS = "defaults"
PAPER_SPLITS = ("own", "same")  # the paper used its own split (not reproducible here), or hemabench's

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["versions", "params", "split", "paper_split", "differences"],
    "properties": {
        "versions": {"oneOf": [{"const": "any"}, {"type": "array", "minItems": 2, "maxItems": 2,
                                                  "items": {"type": ["integer", "null"]}}]},
        "params": {"oneOf": [{"const": DEFAULTS}, {"type": "object"}]},
        "params_contain": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1}},
        "split": {"type": "string", "minLength": 1},
        "source_split": {"type": "string", "minLength": 1},
        "paper_split": {"enum": list(PAPER_SPLITS)},
        "classes": {"type": "array", "minItems": 2, "items": {"type": "string"}},
        "weights": {"type": "object", "additionalProperties": {"type": "string", "minLength": 3}},
        "differences": {"type": "array", "items": {"type": "string", "minLength": 3}},
    },
}


@dataclass(frozen=True)
class Protocol:
    """What a reported value assumes of a run; see the module docstring."""

    versions: tuple[int | None, int | None] = (None, None)  # inclusive bounds, None = open
    params: str | dict = DEFAULTS
    params_contain: dict = field(default_factory=dict)  # list parameters that must include these items
    split: str = ""
    paper_split: str = "own"
    source_split: str | None = None  # a cross-dataset task's source split rule (bm-to-blood: matek-bm's)
    classes: tuple[str, ...] | None = None  # the classes the paper scores; None: the task's own
    weights: dict = field(default_factory=dict)  # encoder -> the weights the paper used (hub id or file)
    differences: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict) -> Protocol:
        versions = (None, None) if raw["versions"] == "any" else tuple(raw["versions"])
        return cls(versions, raw["params"], dict(raw.get("params_contain") or {}), raw["split"], raw["paper_split"],
                   raw.get("source_split"), tuple(raw["classes"]) if raw.get("classes") else None,
                   dict(raw.get("weights") or {}), tuple(raw["differences"]))

    def board_mismatches(self, task, result: Result) -> list[str]:
        """How a board (any of its results: version, parameters and split are what define it) departs."""
        out = []
        low, high = self.versions
        if (low is not None and result.task_version < low) or (high is not None and result.task_version > high):
            out.append(f"task version {result.task_version} outside {low or 'any'}-{high or 'any'}")
        wanted = dict(task.params) if self.params == DEFAULTS else dict(self.params)
        if self.params == DEFAULTS:  # the contained lists are checked below, not against their defaults
            wanted = {k: v for k, v in wanted.items() if k not in self.params_contain}
            extra = set(result.params) - set(wanted) - set(self.params_contain)
            if extra:
                out.append(f"params differ ({', '.join(sorted(extra))} not in the protocol)")
        changed = sorted(k for k, v in wanted.items() if not same_json(result.params.get(k), v))
        if changed:
            out.append(f"params differ ({', '.join(changed)})")
        for key, items in self.params_contain.items():
            have = result.params.get(key)
            if not isinstance(have, list) or any(not any(same_json(i, h) for h in have) for i in items):
                out.append(f"params differ ({key} must include {items})")
        checks = [("split", result.dataset, result.split, self.split)]
        if self.source_split:
            source = result.source_split
            checks.append(("source split", str(source.get("dataset", "")), source, self.source_split))
        for what, dataset, split, wanted in checks:
            if split.get("name") != wanted:
                out.append(f"{what} differs ({split.get('name')} instead of {wanted})")
            elif not registered_split(dataset, split):
                out.append(f"{what} differs (fingerprint of {wanted} is not the registered one)")
        return out

    def class_mismatch(self, result: Result) -> list[str]:
        if self.classes is None or sorted(result.labels) == sorted(self.classes):
            return []
        return [f"other class set ({len(self.classes)} classes in the paper, {len(result.labels)} scored here)"]

    def weights_mismatch(self, encoder: str, result: Result) -> list[str]:
        wanted = self.weights.get(encoder)
        if wanted is None or wanted in weight_ids(result):
            return []
        return [f"encoder weights differ (the paper used {wanted})"]

    def mismatches(self, task, encoder: str, result: Result) -> list[str]:
        """Every reason a run of ``encoder`` (a Result) cannot be paired with a value under this protocol."""
        return self.board_mismatches(task, result) + self.class_mismatch(result) + \
            self.weights_mismatch(encoder, result)

    def remaining(self) -> list[str]:
        """What stays different on a matching board, for the row's note."""
        split = ["split (the paper's own, not reproducible here)"] if self.paper_split == "own" else []
        return split + list(self.differences)


def weight_ids(result: Result) -> set[str]:
    """The identifiers of the weights a result's recorded encoder spec loads (hub ids, file names, URLs)."""
    spec = result.encoder_spec
    sources = spec.get("weights") if isinstance(spec, dict) else None
    return {str(s[k]) for s in (sources if isinstance(sources, list) else []) if isinstance(s, dict)
            for k in ("hub", "local", "url") if k in s}


def registered_split(dataset: str, split: dict) -> bool:
    """True unless the registry holds this (dataset, rule) at another version or fingerprint."""
    from hemabench.splits.fingerprints import load_registry

    entry = (load_registry().get(dataset) or {}).get(str(split.get("name")))
    return not entry or (entry.get("version") == split.get("version")
                         and entry.get("fingerprint") == split.get("fingerprint"))


def hemabench_classes(task: str, dataset: str) -> list[str] | None:
    """The classes hemabench scores for a task on a dataset: a class mapping's scored classes where the
    task maps classes (bm-to-blood), else the dataset's; None when neither is known."""
    from hemabench.datasets import DATASETS
    from hemabench.paths import benchmarks_dir
    from hemabench.tasks import TASKS

    mapping = TASKS.get(task).params.get("mapping") if task in TASKS.names() else None
    if isinstance(mapping, str) and (benchmarks_dir() / "mappings" / f"{mapping}.yaml").is_file():
        targets = load_yaml(benchmarks_dir() / "mappings" / f"{mapping}.yaml", mapping=True).get("targets") or {}
        return sorted((targets.get(dataset) or {}).get("scored") or []) or None
    return sorted(DATASETS.get(dataset).classes) if dataset in DATASETS.names() else None


def unknown_params(protocol: Protocol, params: dict) -> list[str]:
    """Parameters the protocol names that the task does not have (a typo in the reported file)."""
    named = set(protocol.params if isinstance(protocol.params, dict) else {}) | set(protocol.params_contain)
    return sorted(k for k in named if k not in params)
