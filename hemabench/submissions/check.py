"""``hemabench check``: regression checks on committed reference results.

1. Re-run: every committed result that CI can reproduce (an offline encoder, one whose
   weights need no download, on an embedded dataset, i.e. the demo suite's encoders) is
   recomputed with the recorded task
   parameters and the WHOLE result compared with the re-run under the tolerance policy of
   ``hemabench.submissions.compare`` (every prediction cell, probability, metric, ``extra``
   number and parameter), so a committed reference that passes is one a re-run matched; the
   leaderboard shows exactly those files (same sha256) as verified (``hemabench.submissions.trust``).
2. ``--base REV``: every result committed at REV must still exist, and must not have
   changed by more than ``epsilon`` unless its task version (or task parameters) changed
   with it, so a silent change of the protocol cannot rewrite the board.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hemabench.errors import HemabenchError
from hemabench.results import Result
from hemabench.submissions.compare import TOLERANCE, compare_results, same_machine
from hemabench.submissions.layout import RESULTS, Problem

EPSILON = 0.02  # --base: absolute, on the 0-1 scale: two percentage points of the main metric


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what was compared, for the log


def reference_files(submissions: Path, encoders: list[str] | None = None) -> list[Path]:
    return sorted(p for p in Path(submissions).glob(f"*/{RESULTS}/*/*.json")
                  if not encoders or p.parents[2].name in encoders)


def reproducible(result: Result) -> str:
    """'' when CI can re-run this result, else why not."""
    from hemabench.datasets import DATASETS
    from hemabench.encoders import ENCODERS

    name, dataset = result.encoder, result.dataset
    if name not in ENCODERS or not ENCODERS.get(name).is_offline:
        return "encoder needs downloaded weights"
    if dataset not in DATASETS or not DATASETS.get(dataset).embedded:
        return "dataset is not embedded (synthetic or bundled; others are not available in CI)"
    return ""


def rerun(submissions: Path, tolerance: float = TOLERANCE, encoders: list[str] | None = None,
          report: CheckReport | None = None, progress: bool = False) -> CheckReport:
    """Re-run the reproducible references into a temporary folder and compare the whole results."""
    from hemabench.pipeline.runner import RunOptions, run_plan
    from hemabench.tasks import TASKS

    report = report or CheckReport()
    plans: dict[str, list[tuple[Path, Result]]] = {}
    for path in reference_files(submissions, encoders):
        try:
            result = Result.load(path)
        except HemabenchError as exc:
            report.problems.append(Problem(str(path), "", str(exc)))
            continue
        why = reproducible(result)
        if why:
            report.lines.append(f"not re-run: {path} ({why})")
        elif result.task_version != TASKS.get(result.task).version:
            report.problems.append(Problem(str(path), "task_version", f"{result.task_version} but the task is now "
                                           f"v{TASKS.get(result.task).version}: regenerate the reference "
                                           "(hemabench run + hemabench submit --overwrite)"))
        else:
            plans.setdefault(result.encoder, []).append((path, result))
    with tempfile.TemporaryDirectory(prefix="hemabench-check-") as tmp:
        for encoder, items in plans.items():
            recorded: dict[str, dict] = {}  # dataset -> task -> the parameters the reference recorded
            for _, r in items:
                recorded.setdefault(r.dataset, {})[r.task] = r.params
            options = RunOptions(out=Path(tmp), progress=progress, device="cpu", dataset_task_params=recorded)
            outcomes = {(o.task, o.dataset): o for o in run_plan([encoder], [(r.task, r.dataset) for _, r in items],
                                                                  options).outcomes}
            for path, old in items:
                _compare(path, old, outcomes[(old.task, old.dataset)], tolerance, report)
    return report


def _compare(path: Path, old: Result, outcome, tolerance: float, report: CheckReport) -> None:
    if outcome.result is None:
        report.problems.append(Problem(str(path), "", f"could not be re-run: {outcome.reason}"))
        return
    new = outcome.result
    if new.split.get("fingerprint") != old.split.get("fingerprint"):
        report.problems.append(Problem(str(path), "split.fingerprint", "the re-run used a different split "
                                       f"({new.split.get('fingerprint')}): the dataset or split rule changed"))
    across = not same_machine(old, new)
    comparison = compare_results(old, new, tolerance, across_machines=across)
    where = f" (made on {old.provenance.get('cpu') or 'an unnamed processor'}, re-run on " \
            f"{new.provenance.get('cpu')})" if across else ""
    report.lines.append(f"{path}: {old.main_metric} {old.main.mean:.4f} -> {new.main.mean:.4f}; {comparison.summary()}"
                        f"{where}")
    report.problems += [Problem(str(path), where, message) for where, message in comparison.problems]


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise HemabenchError(f"git {' '.join(args)} failed: {str(detail).strip()}") from None


def against_base(rev: str, submissions: Path, epsilon: float = EPSILON, report: CheckReport | None = None) -> CheckReport:
    """Compare every result committed at ``rev`` with the working tree."""
    report = report or CheckReport()
    submissions = Path(submissions).resolve()
    root = Path(_git(submissions if submissions.is_dir() else submissions.parent, "rev-parse", "--show-toplevel").strip())
    rel = submissions.relative_to(root).as_posix()
    listed = _git(root, "ls-tree", "-r", "--name-only", rev, "--", rel).splitlines()
    for name in sorted(n for n in listed if n.endswith(".json") and f"/{RESULTS}/" in n):
        path = root / name
        if not path.is_file():
            report.problems.append(Problem(name, "", f"was committed at {rev} and has been removed"))
            continue
        try:
            old = Result.from_dict(json.loads(_git(root, "show", f"{rev}:{name}")), f"{rev}:{name}")
            new = Result.load(path)
        except (HemabenchError, ValueError) as exc:
            report.problems.append(Problem(name, "", str(exc)))
            continue
        if new.document == old.document:
            continue
        if new.task_version != old.task_version or new.params != old.params:
            report.lines.append(f"{name}: changed with its task version/parameters (v{old.task_version} -> "
                                f"v{new.task_version})")
        elif new.main_metric != old.main_metric:
            report.problems.append(Problem(name, "main_metric", f"changed from {old.main_metric!r} to "
                                           f"{new.main_metric!r} without a task version change"))
        elif abs(new.main.mean - old.main.mean) > epsilon:
            report.problems.append(Problem(name, f'metrics["{new.main_metric}"].mean',
                                           f"changed {old.main.mean:.4f} -> {new.main.mean:.4f} since {rev} without a "
                                           f"task version change (|Δ| {abs(new.main.mean - old.main.mean):.4f} > ε "
                                           f"{epsilon})"))
        else:
            report.lines.append(f"{name}: changed within ε ({old.main.mean:.4f} -> {new.main.mean:.4f})")
    return report


def missing_references(submissions: Path, suite: str = "demo") -> list[str]:
    """Demo-suite (encoder, task, dataset) triples with no committed reference, to keep the references complete."""
    from hemabench.pipeline.suites import load_suite

    s = load_suite(suite)
    return [f"{e}/{t}/{d}" for e in s.encoders for t, d in s.plan(encoder=e)
            if not (Path(submissions) / e / RESULTS / t / f"{d}.json").is_file()]
