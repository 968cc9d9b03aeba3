"""`hemabench run`: records -> split -> embeddings (cached) -> protocol -> result JSON.

Work is grouped per (encoder, dataset): each dataset is read and embedded once for all its
tasks (and once more never, when it is also another task's source). A result that is
already on disk and current (same task version and parameters, split fingerprints and
weights hash) is reused; missing data or weights skip that part of the plan with a reason,
and the rest still runs.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from hemabench.compute.backends import fit_backend, job_count
from hemabench.compute.device import resolve_device
from hemabench.datasets import DATASETS, get_dataset
from hemabench.datasets.roots import find_root
from hemabench.datasets.twins import DEFAULT_SEED, DEFAULT_SIZE, generate_into
from hemabench.embeddings import extract_embeddings
from hemabench.embeddings.cache import CHUNK_SIZE
from hemabench.embeddings.cost import extraction_throughput, measure_cost
from hemabench.embeddings.distributed import Ranks, launched, ranks_from_env
from hemabench.embeddings.views import extract_views
from hemabench.encoders import EncoderWeightsMissing, load_encoder
from hemabench.errors import DatasetNotFound, HemabenchError
from hemabench.pipeline.suites import restrict
from hemabench.results import Result, build_result, predictions_payload, result_path
from hemabench.results.provenance import now, provenance
from hemabench.splits import MaterialisedSplit, get_rule
from hemabench.tasks import TASKS, TaskInput
from hemabench.tasks.base import ViewRequest

# loky's worker exited cleanly (its idle timeout, or a restart after memory growth) just as jobs were
# queued: loky starts a replacement and says so on stderr; no job is lost, and each is seeded by its own
# arguments, so the numbers are those of any other worker
warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the executor",
                        category=UserWarning)


@dataclass
class RunOptions:
    out: Path = Path("results")
    data_root: str | None = None
    device: str = "auto"
    batch_size: int | str = "auto"  # auto: the largest that fits on a GPU, 64 on CPU
    workers: int | None = None
    compile: bool = False  # torch.compile the encoder (pays off on large datasets on a GPU)
    pixel_cache: bool = False  # keep a pre-resized uint8 copy of each dataset, shared by encoders
    weights: str | None = None
    overwrite: bool = False
    progress: bool = True  # progress bars (extraction, protocol fits/folds/epochs) on stderr
    backend: str = "local"  # where a task's independent fits run: local or dask (hemabench.compute.backends)
    backend_address: str | None = None  # the dask scheduler; None: a local cluster, one worker per core
    seed: int = 0
    task_params: dict[str, dict] = field(default_factory=dict)  # task -> parameter overrides (from the suite)
    dataset_task_params: dict[str, dict] = field(default_factory=dict)  # dataset -> task -> overrides (suite)
    encoder_datasets: dict[str, tuple] = field(default_factory=dict)  # encoder -> the only datasets it runs (suite)
    custom: tuple = ()  # (text, Columns, split) of each folder:/hf: dataset, so sweep jobs resolve custom-<name> too


@dataclass
class Outcome:
    encoder: str
    task: str
    dataset: str
    status: str  # computed | reused | skipped
    result: Result | None = None
    reason: str = ""
    path: Path | None = None


@dataclass
class RunReport:
    outcomes: list[Outcome] = field(default_factory=list)
    images_forwarded: int = 0
    seconds: float = 0.0


class _Session:
    """One encoder's pass over the plan: the encoder is loaded once, each dataset prepared once."""

    def __init__(self, encoder_name: str, options: RunOptions, report: RunReport) -> None:
        self.encoder_name, self.options, self.report = encoder_name, options, report
        self._encoder = None
        self._prepared: dict[str, dict | Exception] = {}
        self._splits: dict[tuple[str, str], MaterialisedSplit] = {}
        self._cost: dict | None = None

    def encoder(self):
        if self._encoder is None:
            try:
                self._encoder = load_encoder(self.encoder_name, weights=self.options.weights)
            except EncoderWeightsMissing as exc:
                self._encoder = exc
        if isinstance(self._encoder, Exception):
            raise self._encoder
        return self._encoder

    def dataset(self, name: str) -> dict:
        """Records and root of a dataset (embeddings are added on first need)."""
        if name not in self._prepared:
            spec = get_dataset(name)  # registered, or a user's own (custom-<name>)
            tick = time.perf_counter()
            try:
                discovery = spec.discover(find_root(spec, data_root=self.options.data_root))
                self._prepared[name] = {"spec": spec, "discovery": discovery, "embeddings": None,
                                        "patients": spec.patient_metadata(discovery.root),
                                        "seconds": {"discover": time.perf_counter() - tick}}
            except DatasetNotFound as exc:
                self._prepared[name] = exc
        if isinstance(self._prepared[name], Exception):
            raise self._prepared[name]
        return self._prepared[name]

    def embeddings(self, name: str):
        prepared = self.dataset(name)
        if prepared["embeddings"] is None:
            tick = time.perf_counter()
            discovery, o = prepared["discovery"], self.options
            prepared["embeddings"], stats = extract_embeddings(
                self.encoder(), discovery.image_source(), discovery.records, dataset=name, batch_size=o.batch_size,
                workers=o.workers, device=o.device, progress=o.progress, compile=o.compile,
                pixel_cache=o.pixel_cache)
            self.report.images_forwarded += stats.images_forwarded
            prepared["seconds"]["extract"], prepared["extraction"] = time.perf_counter() - tick, stats
        return prepared["embeddings"]

    def views(self, name: str, request: ViewRequest) -> dict:
        """The perturbed views a task asked for, each through the embedding cache."""
        prepared, o = self.dataset(name), self.options
        records = prepared["discovery"].records.iloc[np.asarray(request.rows, dtype=int)]
        # a few cells per view: starting a DataLoader worker for each view would cost more than it saves
        workers = o.workers if o.workers is not None or len(records) >= CHUNK_SIZE else 0
        views, forwarded = extract_views(
            self.encoder(), prepared["discovery"].image_source(), records, request.views, dataset=name,
            batch_size=o.batch_size, workers=workers, device=o.device, progress=o.progress, compile=o.compile)
        self.report.images_forwarded += forwarded
        return views

    def cost(self, dataset: str) -> dict:
        """The result's ``encoder_cost``: measured once per encoder and run, plus this dataset's extraction."""
        if self._cost is None:
            self._cost = measure_cost(self.encoder(), self.options.device)
        return {**self._cost, **extraction_throughput(self.dataset(dataset).get("extraction"))}

    def split(self, dataset: str, rule: str) -> MaterialisedSplit:
        """Each split built once per session (the currency check's split is the one evaluated)."""
        if (dataset, rule) not in self._splits:
            records = self.dataset(dataset)["discovery"].records
            self._splits[dataset, rule] = MaterialisedSplit.build(dataset, get_rule(dataset, rule), records)
            spec = self.dataset(dataset)["spec"]
            for note in spec.note_split(self._splits[dataset, rule]) if spec.custom else []:
                print(f"note: {dataset}: {note}", file=sys.stderr)  # also recorded in the result's dataset_info
        return self._splits[dataset, rule]

    def task_input(self, name: str, split: MaterialisedSplit, device: str) -> TaskInput:
        prepared = self.dataset(name)
        records = prepared["discovery"].records
        embeddings = self.embeddings(name)
        data = TaskInput(features=np.asarray(embeddings.features, dtype=np.float32), records=records,
                         parts=split.assignment["part"].to_numpy(), rotations=split.rule.rotations(),
                         valid=embeddings.valid, device=device, seed=self.options.seed, dataset=name,
                         patients=prepared["patients"], progress=self.options.progress)
        return data


def run_plan(encoders: list[str], plan: list[tuple[str, str]], options: RunOptions) -> RunReport:
    """Every (task, dataset) of ``plan`` for every encoder. Under torchrun all ranks share the
    extraction of each needed dataset; rank 0 alone then runs the protocols and writes results."""
    report = RunReport()
    start = time.perf_counter()
    for text, columns, split in options.custom:
        get_dataset(text, columns, split)
    ranks = ranks_from_env(resolve_device(options.device).type == "cuda") if launched() else Ranks()
    if ranks.world == 1:
        _generate_twins(plan)
    with fit_backend(options.backend, options.backend_address):
        _run_encoders(encoders, plan, options, ranks, report)
    report.seconds = time.perf_counter() - start
    return report


def _generate_twins(plan: list[tuple[str, str]]) -> None:
    """The synthetic twins the plan reads (its datasets and their tasks' sources) that the cache
    lacks, generated side by side in worker processes: each twin is seeded and renamed into
    place, so this is exactly what generating them one at a time on first use would write."""
    names = {d for _, d in plan} | {s[0] for t, d in plan if (s := TASKS.get(t).source_for(d))}
    folders = [(n, spec.generated_folder()) for n in sorted(names) if n in DATASETS and (spec := get_dataset(n)).synthetic]
    todo = [(name, folder) for name, folder in folders if not folder.is_dir()]
    if len(todo) > 1:
        Parallel(n_jobs=job_count())(delayed(generate_into)(name, folder, DEFAULT_SIZE, DEFAULT_SEED)
                                    for name, folder in todo)


def _run_encoders(encoders: list[str], plan: list[tuple[str, str]], options: RunOptions, ranks: Ranks,
                  report: RunReport) -> None:
    for encoder_name in encoders:
        by_dataset: dict[str, list[str]] = defaultdict(list)  # the suite may limit an encoder to some datasets
        for task, dataset in restrict(plan, options.encoder_datasets.get(encoder_name)):
            by_dataset[dataset].append(task)
        session = _Session(encoder_name, options, report)
        if ranks.world > 1:
            _extract_together(session, by_dataset)
            if not ranks.is_main:
                continue
        for dataset, tasks in by_dataset.items():
            for task_name in tasks:
                step = _prepare(session, task_name, dataset)
                report.outcomes.append(step if isinstance(step, Outcome) else _evaluate(session, step))


def _extract_together(session: _Session, by_dataset: dict[str, list[str]]) -> None:
    """The embeddings every not-yet-current result needs, computed by all ranks in the same order."""
    for dataset, tasks in by_dataset.items():
        for task_name in tasks:
            step = _prepare(session, task_name, dataset)
            if isinstance(step, _Pending):
                session.embeddings(dataset)
                if step.source_split is not None:
                    session.embeddings(step.source_split.dataset)
                for member in step.panel_splits:
                    session.embeddings(member.dataset)


@dataclass
class _Pending:
    """A result that must be computed, with everything decided before the protocol runs."""

    task: object
    dataset: str
    split: MaterialisedSplit
    source_split: MaterialisedSplit | None
    path: Path
    started: str
    panel_splits: list[MaterialisedSplit] = field(default_factory=list)  # further datasets present (blood-shift)


def _prepare(session: _Session, task_name: str, dataset: str) -> Outcome | _Pending:
    """Skipped (no data, no weights), reused (current result on disk), or pending."""
    options = session.options
    overrides = {**options.task_params.get(task_name, {}),  # the dataset's overrides win (a small sample's grid)
                 **options.dataset_task_params.get(dataset, {}).get(task_name, {})}
    task = TASKS.get(task_name).with_params(**overrides)
    started = now()
    try:
        session.dataset(dataset)
        source = task.source_for(dataset)
        if source:
            session.dataset(source[0])
        encoder = session.encoder()
    except DatasetNotFound as exc:
        return Outcome(session.encoder_name, task_name, dataset, "skipped", reason=f"data not found: {exc}")
    except EncoderWeightsMissing as exc:
        return Outcome(session.encoder_name, task_name, dataset, "skipped", reason=f"weights missing: {exc}")
    spec = session.dataset(dataset)["spec"]
    problem = spec.class_problem() if spec.custom else None
    if problem:  # own data too small for any task: one line, before any extraction
        return Outcome(session.encoder_name, task_name, dataset, "skipped", reason=f"cannot run: {problem}")
    split = session.split(dataset, task.split_for(dataset))
    source_split = session.split(*source) if source else None
    panel = [session.split(d, rule) for d, rule in task.panel_for(dataset) if _present(session, d)]
    path = result_path(options.out, encoder.spec.name, task_name, dataset)  # `local:DIR` -> its safe name
    existing = Result.read(path)
    other = existing.dataset_info.get("source") if existing is not None and spec.custom else None
    if other and other != spec.text and not options.overwrite:  # two folders named alike: never replace silently
        return Outcome(session.encoder_name, task_name, dataset, "skipped",
                       reason=f"{path} holds the results of {other}, also named {dataset}: nothing replaced; pass "
                              "--overwrite to replace them, or --out another folder")
    fingerprints = [split.fingerprint] + ([source_split.fingerprint] if source_split else []) + \
        [member.fingerprint for member in panel]
    if not options.overwrite and existing is not None and existing.is_current(task, fingerprints,
                                                                              encoder.weights_sha256):
        return Outcome(session.encoder_name, task_name, dataset, "reused", result=existing, path=path)
    return _Pending(task, dataset, split, source_split, path, started, panel)


def _present(session: _Session, dataset: str) -> bool:
    """Whether a panel member's data is here (a panel uses the datasets present, never fails for one)."""
    try:
        session.dataset(dataset)
        return True
    except DatasetNotFound:
        return False


def _evaluate(session: _Session, step: _Pending) -> Outcome:
    options, task, dataset = session.options, step.task, step.dataset
    prepared, encoder = session.dataset(dataset), session.encoder()
    device = str(resolve_device(options.device))
    data = session.task_input(dataset, step.split, device)
    if step.source_split is not None:
        data.source = session.task_input(step.source_split.dataset, step.source_split, device)
    if step.panel_splits:
        data.panel = {m.dataset: session.task_input(m.dataset, m, device) for m in step.panel_splits}
    phases = dict(prepared["seconds"])
    request = task.view_request(data)
    if request is not None:  # perturbed views (robustness): embedded here, the task only sees features
        tick = time.perf_counter()
        data.views, data.view_rows = session.views(dataset, request), np.asarray(request.rows, dtype=int)
        phases["views"] = time.perf_counter() - tick
    tick = time.perf_counter()
    try:
        preds = task.evaluate(data)
    except HemabenchError as exc:  # a user's own data may not suit every task: skip it, say why, run the rest
        if not prepared["spec"].custom:
            raise
        return Outcome(session.encoder_name, task.name, dataset, "skipped", reason=f"cannot run: {exc}")
    phases["protocol"] = time.perf_counter() - tick
    tick = time.perf_counter()
    labels = task.result_labels(data)
    payload = predictions_payload(preds)
    scores = task.score(payload, labels, preds.extra, seed=options.seed)
    phases["score"] = time.perf_counter() - tick
    result = build_result(
        task=task, dataset_spec=prepared["spec"], split=step.split, encoder=encoder, labels=labels,
        predictions=payload, scores=scores, extra=preds.extra, excluded=session.embeddings(dataset).failed,
        source_split=step.source_split, panel_splits=step.panel_splits,
        provenance=provenance(device, {"split": step.split.rule.seed, "protocol": options.seed,
                                       "bootstrap": options.seed}, step.started, phases),
        encoder_cost=session.cost(dataset))
    result.write(step.path)
    return Outcome(session.encoder_name, task.name, dataset, "computed", result=result, path=step.path)
