"""The registry of split rules, read from ``benchmarks/splits.yaml`` (data, not code)."""

from __future__ import annotations

from functools import lru_cache

from hemabench.errors import HemabenchError
from hemabench.files.untrusted import load_yaml
from hemabench.paths import benchmarks_dir
from hemabench.splits.rules import SplitRule


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict]:
    path = benchmarks_dir() / "splits.yaml"
    raw = load_yaml(path, mapping=True)
    catalog = {}
    for dataset, entry in raw.items():
        rules = {}
        for name, params in entry["rules"].items():
            params = dict(params)
            if "roles" in params:
                params["roles"] = tuple(params["roles"])
            rules[name] = SplitRule(name=name, **params)
        if entry["default"] not in rules:
            raise ValueError(f"{path}: default split of {dataset!r} is not one of its rules")
        catalog[dataset] = {"default": entry["default"], "rules": rules}
    return catalog


CUSTOM_PREFIX = "custom-"  # a user's own dataset: the catalog's shared "custom" entry


def _entry(dataset: str) -> dict | None:
    entry = _catalog().get(dataset)
    if entry is None and dataset.startswith(CUSTOM_PREFIX):
        entry = _catalog().get("custom")
    return entry


def split_names(dataset: str) -> list[str]:
    return list((_entry(dataset) or {}).get("rules", {}))


def get_rule(dataset: str, name: str | None = None) -> SplitRule:
    """The named rule of a dataset, or its default; a clear error for unknown names."""
    entry = _entry(dataset)
    if entry is None:
        raise HemabenchError(f"no split rules are defined for dataset {dataset!r} in benchmarks/splits.yaml")
    name = name or entry["default"]
    if name not in entry["rules"]:
        raise HemabenchError(f"dataset {dataset!r} has no split {name!r}; defined: {', '.join(entry['rules'])}")
    return entry["rules"][name]
