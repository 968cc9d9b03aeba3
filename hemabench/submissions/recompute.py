"""Recomputing a result's numbers and its split fingerprints, for ``hemabench validate``.

Scores are recomputed exactly as the runner computes them (``score_predictions`` on the
stored predictions plus the task's ``summarise``), with the task's recorded parameters
and the recorded bootstrap seed, so an honest file matches to the last bit and an edited
number is reported with the value the predictions actually give.
"""

from __future__ import annotations

import math

from hemabench.results.result import Result
from hemabench.splits.fingerprints import REGISTRY_FILE, registered
from hemabench.submissions.derived import task_of
from hemabench.submissions.layout import Problem, shortened

REL_TOL, ABS_TOL = 1e-9, 1e-12
# Temperature-scaled metrics (``*_ts``) rest on a temperature that Brent's method finds to about
# 1e-8 relative, depending on the machine's floating-point path (measured: 3e-8 on the committed
# BreakHis references re-scored on another 2-core machine); they are compared at 1e-6 relative.
TS_REL_TOL = 1e-6


def recompute(result: Result) -> dict:
    """metrics, per_class and confusion_matrix as the runner would write them (``Task.score``)."""
    return task_of(result).score(result.predictions, result.labels, result.extra, seed=result.bootstrap_seed)


def _same(a, b, rel_tol: float = REL_TOL) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel_tol, abs_tol=ABS_TOL)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, rel_tol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rel_tol) for k in a)
    return a == b


_show = shortened


def _compare_maps(stored: dict, fresh: dict, shown: str, name: str) -> list[Problem]:
    """Each differing leaf (one level of nesting) as one line: field, stored, recomputed."""
    problems = []
    for key in sorted(set(stored) | set(fresh), key=str):
        field = f'{name}["{key}"]'
        if key not in fresh:
            problems.append(Problem(shown, field, "is stored but the predictions do not give it"))
        elif key not in stored:
            problems.append(Problem(shown, field, f"is missing; the predictions give {_show(fresh[key])}"))
        elif isinstance(stored[key], dict) and isinstance(fresh[key], dict):
            rel_tol = TS_REL_TOL if str(key).endswith("_ts") else REL_TOL
            for sub in sorted(set(stored[key]) | set(fresh[key])):
                a, b = stored[key].get(sub), fresh[key].get(sub)
                if not _same(a, b, rel_tol):
                    problems.append(Problem(shown, f"{field}.{sub}",
                                            f"stored {_show(a)} but the stored predictions give {_show(b)}"))
        elif not _same(stored[key], fresh[key]):
            problems.append(Problem(shown, field, f"stored {_show(stored[key])} but the predictions give "
                                                  f"{_show(fresh[key])}"))
    return problems


def score_problems(result: Result, shown: str) -> list[Problem]:
    """Every metric, per-class value and confusion-matrix cell that the predictions contradict."""
    try:
        fresh = recompute(result)
    except Exception as exc:  # malformed predictions: say so, do not crash the whole validation
        return [Problem(shown, "predictions", f"cannot be scored: {exc!r}")]
    problems = _compare_maps(result.metrics, fresh["metrics"], shown, "metrics")
    problems += derived_extra_problems(result, shown)
    problems += stopping_result_problems(result, shown)
    problems += _compare_maps(result.per_class, fresh["per_class"], shown, "per_class")
    stored_cm, fresh_cm = result.confusion_matrix, fresh["confusion_matrix"]
    if stored_cm.get("labels") != fresh_cm["labels"]:
        problems.append(Problem(shown, "confusion_matrix.labels", f"stored {_show(stored_cm.get('labels'))}, "
                                                                  f"expected {_show(fresh_cm['labels'])}"))
    else:
        for i, (a, b) in enumerate(zip(stored_cm.get("counts") or [], fresh_cm["counts"])):
            if list(a) != list(b):
                problems.append(Problem(shown, f"confusion_matrix.counts[{i}] (true {fresh_cm['labels'][i]})",
                                        f"stored {_show(a)} but the predictions give {_show(b)}"))
        if len(stored_cm.get("counts") or []) != len(fresh_cm["counts"]):
            problems.append(Problem(shown, "confusion_matrix.counts", "has the wrong number of rows"))
    return problems


def derived_extra_problems(result: Result, shown: str) -> list[Problem]:
    """Each ``extra`` entry the task derives from its predictions (``Task.derived``: the BreakHis
    cross-magnification matrices and magnification means, the sweeps' standard errors over
    repetitions) must equal what the stored predictions give."""
    try:
        fresh, stored = task_of(result).derived(result.predictions, result.labels, result.extra), result.extra
    except Exception as exc:  # malformed predictions or extra: say so, do not crash the whole validation
        return [Problem(shown, "extra", f"its derived entries cannot be recomputed: {exc!r}")]
    problems = []
    for key, value in fresh.items():
        for path, a, b in _differences(stored.get(key), value, f'extra["{key}"]'):
            problems.append(Problem(shown, path, f"stored {_show(a)} but the predictions give {_show(b)}"))
    return problems


def _differences(stored, fresh, path: str) -> list[tuple[str, object, object]]:
    """(path, stored, recomputed) of each leaf where the two differ (a whole list or mapping where
    their shapes differ)."""
    if isinstance(stored, dict) and isinstance(fresh, dict) and stored.keys() == fresh.keys():
        return [d for k in fresh for d in _differences(stored[k], fresh[k], f'{path}["{k}"]')]
    if isinstance(stored, list) and isinstance(fresh, list) and len(stored) == len(fresh):
        return [d for i, (a, b) in enumerate(zip(stored, fresh)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if _same(stored, fresh) else [(path, stored, fresh)]


def stopping_result_problems(res: Result, shown: str) -> list[Problem]:
    """A sweep whose parameters state a stopping rule (``precision``: label-efficiency v3,
    bm-to-blood v4) must record, per group of variants fitted on the same support sets, the
    repetitions that the rule gives on the stored per-repetition confusions."""
    from hemabench.protocols.stopping import StoppingRule, stopping_problems

    if "precision" not in res.params or "repetitions" not in res.params:
        return []  # a task without the rule (or a result from before it): fixed repetitions
    rule, stopping = StoppingRule.from_params(res.params), res.extra.get("stopping")
    if not isinstance(stopping, dict) or not isinstance(stopping.get("groups"), dict):
        return [Problem(shown, "extra.stopping", "is missing: the parameters state a stopping rule "
                                                 f"{rule.describe()} and the repetitions per n must be recorded")]
    problems = [] if stopping.get("rule") == rule.describe() else [
        Problem(shown, "extra.stopping.rule", f"stored {_show(stopping.get('rule'))} but the parameters give "
                                              f"{_show(rule.describe())}")]
    grouped = {v for entry in stopping["groups"].values() if isinstance(entry, dict) for v in entry.get("variants") or []}
    swept = {v for v, p in res.predictions.items() if isinstance(p, dict) and "confusions" in p}
    if grouped != swept:
        problems.append(Problem(shown, "extra.stopping.groups", f"cover {sorted(grouped)[:4]}... but the variants with "
                                                                f"confusions are {sorted(swept)[:4]}..."))
    groups = {k: v if isinstance(v, dict) else {} for k, v in stopping["groups"].items()}
    problems += [Problem(shown, field, message) for field, message in stopping_problems(rule, groups, res.predictions)]
    return problems


def registry_fingerprint(dataset: str, split: str, data_root: str | None) -> tuple[str | None, str]:
    """(fingerprint, how it was obtained) of a registered split, or (None, why it cannot be)."""
    from hemabench.splits import get_rule
    from hemabench.submissions.derived import materialised

    rule = get_rule(dataset, split)
    built = materialised(dataset, split, data_root)
    if built is None:
        frozen = registered(dataset, split, rule.version) or {}  # benchmarks/fingerprints.yaml
        if frozen.get("fingerprint"):
            return str(frozen["fingerprint"]), f"frozen in benchmarks/{REGISTRY_FILE}"
        return None, "the dataset is not available here and no frozen fingerprint is committed"
    return built[0].fingerprint, "recomputed from the local dataset"


def split_problems(result: Result, shown: str, data_root: str | None) -> list[Problem]:
    """The split (and source split) must be the registry's rule, version and fingerprint."""
    from hemabench.splits import get_rule
    from hemabench.tasks import TASKS

    task, dataset = TASKS.get(result.task), result.dataset
    wanted = [("split", dataset, get_rule(dataset, task.split_for(dataset)), result.split)]
    source = task.source_for(dataset)
    if source:
        wanted.append(("source_split", source[0], get_rule(*source), result.source_split))
    problems = []
    members = dict(task.panel_for(dataset))  # a panel task (blood-shift): the further datasets it used
    for i, stored in enumerate(result.panel_splits):
        name = stored.get("dataset") if isinstance(stored, dict) else None
        if name not in members:
            problems.append(Problem(shown, f"panel_splits[{i}].dataset", f"{name!r} is not in the task's panel "
                                                                         f"{sorted(members)}"))
        else:
            wanted.append((f"panel_splits[{i}]", name, get_rule(name, members.pop(name)), stored))
    for field, name, rule, stored in wanted:
        stored = stored if isinstance(stored, dict) else {}
        if stored.get("name") != rule.name or stored.get("version") != rule.version:
            problems.append(Problem(shown, f"{field}.name/version", f"{stored.get('name')!r} v{stored.get('version')}"
                                    f" is not the task's split {rule.name!r} v{rule.version} of {name}"))
            continue
        expected, how = registry_fingerprint(name, rule.name, data_root)
        if expected is None:
            problems.append(Problem(shown, f"{field}.fingerprint", f"could not be verified: {how}", "warning"))
        elif stored.get("fingerprint") != expected:
            problems.append(Problem(shown, f"{field}.fingerprint", f"{stored.get('fingerprint')} does not match the "
                                    f"registry's {name} {rule.name} v{rule.version} ({how}): {expected}"))
    return problems
