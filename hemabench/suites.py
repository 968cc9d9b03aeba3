"""Suites: named (tasks x datasets [x encoders]) plans, read from benchmarks/suites/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from hemabench.errors import HemabenchError
from hemabench.paths import benchmarks_dir


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: tuple[str, ...]
    datasets: tuple[str, ...]
    encoders: tuple[str, ...]
    task_params: dict  # task -> parameter overrides (e.g. fewer repetitions for the demo)

    def plan(self, tasks=None, datasets=None) -> list[tuple[str, str]]:
        """(task, dataset) pairs of this suite, narrowed by --task / --dataset."""
        from hemabench.tasks import TASKS

        pairs = [(t, d) for t in self.tasks for d in TASKS.get(t).datasets if d in self.datasets]
        return [(t, d) for t, d in pairs if (not tasks or t in tasks) and (not datasets or d in datasets)]


def load_suite(name: str) -> Suite:
    from hemabench.datasets import DATASETS
    from hemabench.tasks import TASKS

    path = benchmarks_dir() / "suites" / f"{name}.yaml"
    if not path.is_file():
        raise HemabenchError(f"unknown suite {name!r}; defined: {', '.join(suite_names())}")
    raw = yaml.safe_load(path.read_text())
    tasks = TASKS.names() if raw["tasks"] == "all" else raw["tasks"]
    datasets = raw["datasets"]
    if datasets in ("real", "synthetic", "all"):
        datasets = [s.name for s in DATASETS if datasets == "all" or s.synthetic == (datasets == "synthetic")]
    for task in tasks:
        TASKS.get(task)
    for dataset in datasets:
        DATASETS.get(dataset)
    task_params = dict(raw.get("task_params") or {})
    for task, overrides in task_params.items():
        if task not in tasks:
            raise HemabenchError(f"{path}: task_params names task {task!r}, which the suite does not run")
        try:
            TASKS.get(task).with_params(**overrides)  # unknown keys and unusable values fail here, not mid-run
        except HemabenchError as exc:
            raise HemabenchError(f"{path}: {exc}") from None
    return Suite(raw["name"], raw.get("description", ""), tuple(tasks), tuple(datasets), tuple(raw.get("encoders", ())),
                 task_params)


def suite_names() -> list[str]:
    return sorted(p.stem for p in (benchmarks_dir() / "suites").glob("*.yaml"))
