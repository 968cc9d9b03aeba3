"""Suites: named (tasks x datasets [x encoders]) plans, read from benchmarks/suites/*.yaml.

``encoder_datasets`` narrows one encoder to some of the suite's datasets (e.g. a slower
pretrained encoder only on the real cells of the demo): it runs the pairs whose dataset, and
a cross-dataset task's source, are among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hemabench.errors import HemabenchError
from hemabench.files.untrusted import load_yaml
from hemabench.paths import benchmarks_dir


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: tuple[str, ...]
    datasets: tuple[str, ...]
    encoders: tuple[str, ...]
    task_params: dict  # task -> parameter overrides (e.g. fewer repetitions for the demo)
    dataset_task_params: dict = field(default_factory=dict)  # dataset -> task -> overrides, on top of task_params
    encoder_datasets: dict = field(default_factory=dict)  # encoder -> the only datasets it runs on (a tuple)

    def plan(self, tasks=None, datasets=None, encoder: str | None = None) -> list[tuple[str, str]]:
        """(task, dataset) pairs of this suite, narrowed by --task / --dataset, and for ``encoder``
        by its ``encoder_datasets`` entry."""
        from hemabench.datasets import get_dataset
        from hemabench.tasks import TASKS

        def runs(task, dataset) -> bool:  # served, and a cross-dataset task's source is in the suite too
            source = task.source_for(dataset) if task.serves(get_dataset(dataset)) else ("", "")
            return source is None or source[0] in self.datasets

        pairs = [(t, d) for t in self.tasks for d in self.datasets if runs(TASKS.get(t), d)]
        pairs = [(t, d) for t, d in pairs if (not tasks or t in tasks) and (not datasets or d in datasets)]
        return restrict(pairs, self.encoder_datasets.get(encoder))


def restrict(plan: list[tuple[str, str]], allowed) -> list[tuple[str, str]]:
    """The pairs of ``plan`` an encoder limited to the datasets ``allowed`` runs (None: all):
    the dataset, and a cross-dataset task's source dataset, must both be allowed."""
    from hemabench.tasks import TASKS

    if allowed is None:
        return list(plan)
    keep = []
    for task, dataset in plan:
        source = TASKS.get(task).source_for(dataset) if dataset in allowed else None
        if dataset in allowed and (source is None or source[0] in allowed):
            keep.append((task, dataset))
    return keep


def _encoder_datasets(raw, encoders: list[str], datasets: list[str], path) -> dict[str, tuple[str, ...]]:
    """Validate ``encoder_datasets``: each key is an encoder of the suite, each value a
    non-empty list of the suite's datasets."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HemabenchError(f"{path}: encoder_datasets must be a mapping encoder -> [datasets], got {raw!r}")
    out = {}
    for encoder, names in raw.items():
        if encoder not in encoders:
            raise HemabenchError(f"{path}: encoder_datasets names encoder {encoder!r}, which the suite does not run "
                                 f"(its encoders: {', '.join(encoders) or 'none'})")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise HemabenchError(f"{path}: encoder_datasets[{encoder}] must be a non-empty list of dataset names, "
                                 f"got {names!r}")
        unknown = [n for n in names if n not in datasets]
        if unknown:
            raise HemabenchError(f"{path}: encoder_datasets[{encoder}] names {', '.join(map(repr, unknown))}, not among "
                                 f"the suite's datasets ({', '.join(datasets)})")
        out[str(encoder)] = tuple(names)
    return out


def load_suite(name: str) -> Suite:
    from hemabench.datasets import DATASETS
    from hemabench.tasks import TASKS

    path = benchmarks_dir() / "suites" / f"{name}.yaml"
    if not path.is_file():
        raise HemabenchError(f"unknown suite {name!r}; defined: {', '.join(suite_names())}")
    raw = load_yaml(path, mapping=True)
    tasks = TASKS.names() if raw["tasks"] == "all" else raw["tasks"]
    datasets = raw["datasets"]
    if datasets in ("real", "synthetic", "all"):
        # real: those found under a data root; the embedded ones (synthetic twins, bundled samples) are the demo's
        chosen = {"all": lambda s: True, "synthetic": lambda s: s.synthetic, "real": lambda s: not s.embedded}[datasets]
        datasets = [s.name for s in DATASETS if chosen(s)]
    for task in tasks:
        TASKS.get(task)
    for dataset in datasets:
        DATASETS.get(dataset)
    for dataset, by_task in raw.get("dataset_task_params", {}).items():
        DATASETS.get(dataset)
        for task in by_task:
            TASKS.get(task)
    task_params = dict(raw.get("task_params") or {})
    dataset_task_params = dict(raw.get("dataset_task_params") or {})
    overridden = [(task, o) for task, o in task_params.items()] + \
        [(task, {**task_params.get(task, {}), **o}) for by_task in dataset_task_params.values() for task, o in by_task.items()]
    for task, overrides in overridden:
        if task not in tasks:
            raise HemabenchError(f"{path}: task_params names task {task!r}, which the suite does not run")
        try:
            TASKS.get(task).with_params(**overrides)  # unknown keys and unusable values fail here, not mid-run
        except HemabenchError as exc:
            raise HemabenchError(f"{path}: {exc}") from None
    encoders = list(raw.get("encoders") or ())
    return Suite(raw["name"], raw.get("description", ""), tuple(tasks), tuple(datasets), tuple(encoders),
                 task_params, dataset_task_params,
                 _encoder_datasets(raw.get("encoder_datasets"), encoders, list(datasets), path))


def suite_names() -> list[str]:
    return sorted(p.stem for p in (benchmarks_dir() / "suites").glob("*.yaml"))
