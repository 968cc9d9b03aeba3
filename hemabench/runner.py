"""`hemabench run`: records -> split -> embeddings (cached) -> protocol -> result JSON.

Work is grouped per (encoder, dataset) so each dataset is read and embedded once for all
its tasks. A result that is already on disk and current (same task version, split
fingerprint and weights hash) is reused; missing data or weights skip that part of the
plan with one line saying why, and the rest still runs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hemabench.datasets import DATASETS
from hemabench.datasets.roots import find_root
from hemabench.embeddings import extract_embeddings, resolve_device
from hemabench.encoders import EncoderWeightsMissing, load_encoder
from hemabench.errors import DatasetNotFound
from hemabench.provenance import now, provenance
from hemabench.results import (
    build_result,
    is_current,
    predictions_payload,
    read_result,
    result_path,
    score_predictions,
    write_result,
)
from hemabench.splits import MaterialisedSplit, get_rule
from hemabench.tasks import TASKS, TaskInput


@dataclass
class RunOptions:
    out: Path = Path("results")
    data_root: str | None = None
    device: str = "auto"
    batch_size: int = 64
    workers: int | None = None
    weights: str | None = None
    overwrite: bool = False
    progress: bool = True
    seed: int = 0


@dataclass
class Outcome:
    encoder: str
    task: str
    dataset: str
    status: str  # computed | reused | skipped
    result: dict | None = None
    reason: str = ""
    path: Path | None = None


@dataclass
class RunReport:
    outcomes: list[Outcome] = field(default_factory=list)
    images_forwarded: int = 0
    seconds: float = 0.0


def run_plan(encoders: list[str], plan: list[tuple[str, str]], options: RunOptions) -> RunReport:
    report = RunReport()
    start = time.perf_counter()
    by_dataset: dict[str, list[str]] = defaultdict(list)
    for task, dataset in plan:
        by_dataset[dataset].append(task)
    for encoder_name in encoders:
        encoder_state = {"loaded": None}
        for dataset, tasks in by_dataset.items():
            report.outcomes += _run_dataset(encoder_name, encoder_state, dataset, tasks, options, report)
    report.seconds = time.perf_counter() - start
    return report


def _load(encoder_name: str, state: dict, options: RunOptions):
    if state["loaded"] is None:
        try:
            state["loaded"] = load_encoder(encoder_name, weights=options.weights)
        except EncoderWeightsMissing as exc:
            state["loaded"] = exc
    if isinstance(state["loaded"], Exception):
        raise state["loaded"]
    return state["loaded"]


def _run_dataset(encoder_name, encoder_state, dataset, tasks, options, report) -> list[Outcome]:
    spec = DATASETS.get(dataset)
    skip = lambda reason: [Outcome(encoder_name, t, dataset, "skipped", reason=reason) for t in tasks]  # noqa: E731
    phases: dict[str, float] = {}
    started = now()
    tick = time.perf_counter()
    try:
        root = find_root(spec, data_root=options.data_root)
        discovery = spec.discover(root)
    except DatasetNotFound as exc:
        return skip(f"data not found: {exc}")
    phases["discover"] = time.perf_counter() - tick
    try:
        encoder = _load(encoder_name, encoder_state, options)
    except EncoderWeightsMissing as exc:
        return skip(f"weights missing: {exc}")
    records = discovery.records
    outcomes, embeddings = [], None
    for task_name in tasks:
        task = TASKS.get(task_name)
        tick = time.perf_counter()
        split = MaterialisedSplit.build(dataset, get_rule(dataset, task.split_for(dataset)), records)
        phases["split"] = time.perf_counter() - tick
        path = result_path(options.out, encoder_name, task_name, dataset)
        existing = read_result(path)
        if not options.overwrite and is_current(existing, task, split.fingerprint, encoder.weights_sha256):
            outcomes.append(Outcome(encoder_name, task_name, dataset, "reused", existing, path=path))
            continue
        if embeddings is None:
            tick = time.perf_counter()
            embeddings, stats = extract_embeddings(
                encoder, discovery.root, records, dataset=dataset, batch_size=options.batch_size,
                workers=options.workers, device=options.device, progress=options.progress)
            report.images_forwarded += stats.images_forwarded
            phases["extract"] = time.perf_counter() - tick
        result = _evaluate(task, spec, split, encoder, records, embeddings, options, started, dict(phases),
                           patients=spec.patient_metadata(discovery.root))
        write_result(path, result)
        outcomes.append(Outcome(encoder_name, task_name, dataset, "computed", result, path=path))
    return outcomes


def _evaluate(task, spec, split, encoder, records, embeddings, options, started, phases, patients=None) -> dict:
    tick = time.perf_counter()
    device = str(resolve_device(options.device))
    data = TaskInput(features=np.asarray(embeddings.features, dtype=np.float32), records=records,
                     parts=split.assignment["part"].to_numpy(), rotations=split.rule.rotations(),
                     valid=embeddings.valid, device=device, seed=options.seed, patients=patients)
    preds = task.evaluate(data)
    phases["protocol"] = time.perf_counter() - tick
    tick = time.perf_counter()
    labels = sorted(set(records.loc[embeddings.valid, task.label_column].astype(str)))
    payload = predictions_payload(preds)
    main_variant = task.main_metric.split("/")[0]
    scores = score_predictions(payload, labels, main_variant, seed=options.seed)
    phases["score"] = time.perf_counter() - tick
    return build_result(
        task=task, dataset_spec=spec, split=split, encoder=encoder, labels=labels, predictions=payload,
        scores=scores, extra=preds.extra, excluded=embeddings.failed,
        provenance=provenance(device, {"split": split.rule.seed, "protocol": options.seed, "bootstrap": options.seed},
                              started, phases))
