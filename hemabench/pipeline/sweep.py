"""Cluster sweeps: many encoders x one plan as one job array, through submitit.

One array element per encoder, each calling ``run_plan([encoder], plan, options)``, so a
SLURM user submits the whole suite with one ``sbatch``. The same path runs on submitit's
local executor (real subprocesses: what the tests use) and its debug executor (in-process).
Elements share the cache and the output folder: results and embedding entries are per
encoder, synthetic data is generated once (whoever finishes first wins), and a re-submitted
sweep reuses current results and cached embeddings, so resuming is running it again.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError
from submitit.local.debug import DebugJob

from hemabench.errors import HemabenchError
from hemabench.pipeline.runner import Outcome, RunOptions, RunReport, run_plan
from hemabench.results import Result

EXECUTORS = ("slurm", "local", "debug")


@dataclass
class SweepOptions:
    """Where and how the array runs; ``None`` leaves a setting to the scheduler's default."""

    executor: str = "slurm"
    log_dir: Path = Path("results/sweep-logs")
    job_name: str = "hemabench"
    partition: str | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: int = 720
    array_parallelism: int | None = None  # elements running at once (default: all)
    tasks_per_node: int = 1  # >1: one process per GPU, torchrun-style variables exported
    slurm_params: dict[str, Any] = field(default_factory=dict)  # extra #SBATCH lines


class SweepJob(NamedTuple):
    encoder: str
    job: Any  # a submitit Job

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)


class SweepFailed(HemabenchError):
    """Some elements failed; ``report`` holds the outcomes of the others, to show them anyway."""

    def __init__(self, message: str, report: RunReport) -> None:
        super().__init__(message)
        self.report = report


def resolve_encoders(names: list[str]) -> list[str]:
    """Check names before anything is queued (a typo fails here, not in N jobs); ``local:DIR``
    becomes absolute; two names that would write the same result folder are refused."""
    from hemabench.encoders import ENCODERS
    from hemabench.encoders.local import is_local, local_encoder_name, local_folder

    resolved, seen = [], {}
    for name in dict.fromkeys(names):
        if is_local(name):
            folder = local_folder(name).absolute()
            name, result_name = f"local:{folder}", local_encoder_name(folder)
        else:
            result_name = ENCODERS.get(name).name
        if result_name in seen:
            raise HemabenchError(f"encoders {seen[result_name]!r} and {name!r} would both write results as "
                                 f"{result_name!r}: sweep them separately, with different --out folders")
        seen[result_name] = name
        resolved.append(name)
    return resolved


def parse_slurm_params(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--slurm-param``) -> sbatch parameters; a bare KEY is a flag."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key:
            raise HemabenchError(f"--slurm-param {item!r}: expected KEY=VALUE (an sbatch option without its --)")
        params[key] = value if sep else True
    return params


def executor_parameters(sweep: SweepOptions) -> dict[str, Any]:
    """SweepOptions -> ``AutoExecutor.update_parameters`` keywords (slurm_* are ignored elsewhere)."""
    params = {"name": sweep.job_name, "timeout_min": sweep.timeout_min, "tasks_per_node": sweep.tasks_per_node,
              "gpus_per_node": sweep.gpus_per_node, "cpus_per_task": sweep.cpus_per_task, "mem_gb": sweep.mem_gb,
              "slurm_partition": sweep.partition, "slurm_array_parallelism": sweep.array_parallelism,
              "slurm_additional_parameters": dict(sweep.slurm_params) or None}
    if sweep.executor == "local" and sweep.gpus_per_node is None:
        # The local executor hides every GPU unless told how many; show the jobs the ones we see.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        params["local_setup"] = ["unset CUDA_VISIBLE_DEVICES" if visible is None
                                 else f"export CUDA_VISIBLE_DEVICES={shlex.quote(visible)}"]
    return {k: v for k, v in params.items() if v is not None}


def make_executor(sweep: SweepOptions) -> submitit.AutoExecutor:
    if sweep.executor not in EXECUTORS:
        raise HemabenchError(f"unknown executor {sweep.executor!r}; one of {', '.join(EXECUTORS)}")
    if sweep.executor == "slurm":
        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if missing:
            raise HemabenchError(f"--executor slurm needs the SLURM commands on PATH ({' and '.join(missing)} not "
                                 "found): submit from a login node of the cluster, or use --executor local to run "
                                 "the jobs as processes on this machine")
    # One folder per job (array element): its sbatch file, pickles and logs.
    executor = submitit.AutoExecutor(folder=Path(sweep.log_dir).absolute() / "%j", cluster=sweep.executor)
    executor.update_parameters(**executor_parameters(sweep))
    return executor


def submit(encoders: list[str], plan: list[tuple[str, str]], options: RunOptions,
           sweep: SweepOptions) -> list[SweepJob]:
    """Submit one array job, one element per encoder; returns the jobs in encoder order."""
    if not encoders:
        raise HemabenchError("no encoders to sweep: give at least one with --encoder NAME")
    if not plan:
        raise HemabenchError("no task/dataset pairs to run")
    executor = make_executor(sweep)
    # Jobs may start elsewhere (another node, another working directory): absolute paths only.
    # Progress bars (unless --quiet) go to stderr, i.e. each job's .err log, redrawn every 30 s there.
    absolute = lambda p: None if p is None else str(Path(p).expanduser().absolute())  # noqa: E731
    options = dataclasses.replace(options, out=Path(absolute(options.out)), data_root=absolute(options.data_root),
                                  weights=absolute(options.weights))
    try:
        jobs = executor.map_array(EncoderJob(), encoders, [plan] * len(encoders), [options] * len(encoders))
    except (FailedJobError, subprocess.CalledProcessError, OSError) as exc:
        raise HemabenchError(f"submitting the sweep with the {sweep.executor} executor failed: {exc}") from None
    return [SweepJob(encoder, job) for encoder, job in zip(encoders, jobs)]


class EncoderJob(submitit.helpers.Checkpointable):
    """The array element. Checkpointable: a timed-out or preempted element is requeued with the
    same arguments, and resumes from cached embeddings and finished results."""

    def __call__(self, encoder: str, plan: list[tuple[str, str]], options: RunOptions) -> dict:
        return run_encoder(encoder, plan, options)


def run_encoder(encoder: str, plan: list[tuple[str, str]], options: RunOptions) -> dict:
    """Run the plan for one encoder; returns a small picklable summary (rank 0's is the one used)."""
    rank = _export_distributed()
    report = run_plan([encoder], plan, options)
    return {"encoder": encoder, "rank": rank, "outcomes": [_summary(o) for o in report.outcomes],
            "images_forwarded": report.images_forwarded, "seconds": report.seconds}


def _export_distributed() -> int:
    """With several tasks per job, export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT as
    torchrun does, for the extraction to split its work; returns this task's global rank."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (e.g. the debug executor's exception path)
        return 0
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return env.global_rank


def _summary(o: Outcome) -> dict:
    """What travels back from a job: the outcome, and where its result file is (not the result)."""
    return {"encoder": o.encoder, "task": o.task, "dataset": o.dataset, "status": o.status, "reason": o.reason,
            "path": str(o.path) if o.path else None}


def _outcome(row: dict) -> Outcome:
    """A summary row back as an Outcome, its result read from the file the job wrote (the sweep's
    output folder is shared); None if that file is gone."""
    path = Path(row["path"]) if row["path"] else None
    result = Result.read(path) if path is not None and row["status"] != "skipped" else None
    return Outcome(row["encoder"], row["task"], row["dataset"], row["status"], result=result, reason=row["reason"],
                   path=path)


def wait(jobs: list[SweepJob]) -> RunReport:
    """Wait for every element; the outcomes of all that finished, as one RunReport (``seconds``:
    the longest element). Raises SweepFailed naming each failed encoder and its log files."""
    report, failures = RunReport(), []
    for item in jobs:
        exc = item.job.exception()  # waits; does not raise (and, for debug jobs, starts no debugger)
        if exc is not None:
            logs = "" if isinstance(item.job, DebugJob) else \
                f"\n  logs: {item.job.paths.stderr}\n        {item.job.paths.stdout}"  # debug jobs wrote none
            failures.append(f"job {item.job_id} (encoder {item.encoder}) failed: {_reason(exc)}{logs}")
            continue
        summary = item.job.results()[0]  # task 0 is rank 0
        report.outcomes += [_outcome(row) for row in summary["outcomes"]]
        report.images_forwarded += summary["images_forwarded"]
        report.seconds = max(report.seconds, summary["seconds"])
    if failures:
        raise SweepFailed(f"{len(failures)} of {len(jobs)} sweep job(s) failed:\n" + "\n".join(failures), report)
    return report


def _reason(exc: BaseException) -> str:
    """The line that says why: the last line of the job's traceback, else the first of the message."""
    if not isinstance(exc, UncompletedJobError):  # the debug executor hands back the exception itself
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    text = str(exc)
    if isinstance(exc, FailedJobError) and "----------------------" in text:
        text = text.split("----------------------")[1]
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "unknown error"
    return " ".join(text.split("\n")[:2]).strip()[:300]
