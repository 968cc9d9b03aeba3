"""Tie a result to its registered split, from the result's own predictions (``hemabench validate``).

A result whose numbers are consistent with its predictions can still be forged: predictions
set to the truth on a subset of easy cells, ids duplicated or invented, ``true`` rewritten,
labels collapsed, a confusion stack instead of per-sample predictions. So the predictions
themselves are checked against ``benchmarks/fingerprints.yaml`` (see
``hemabench.splits.fingerprints``): per variant and fold the ids are unique, and the sorted ids,
the (id, true label) pairs and the per-class counts equal one registered view of that test
fold; for k-fold rules the split fingerprint recomputed from (id, fold) equals the registered
one; the label set is the dataset's; confusion-only variants sum to the registered counts.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np
import pandas as pd

from hemabench.results.result import Result
from hemabench.splits.fingerprints import counts_of, fully_registered, ids_sha256, labelled_sha256, registered
from hemabench.splits.materialise import fingerprint
from hemabench.submissions.layout import Problem
from hemabench.submissions.sampled import sampled_problems

UNREGISTERED = "unregistered split"


def _short(sha) -> str:
    return str(sha)[:12]


def _fold_key(fold: str, tests: dict) -> str | None:
    """The registered test fold a prediction's ``fold`` value belongs to ('fold2/s0' -> 'fold2'; a
    repetition 'rep003' of a holdout -> its one test part)."""
    key = str(fold).split("/", 1)[0]
    if key in tests:
        return key
    return next(iter(tests)) if len(tests) == 1 else None


def _show_counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _variant_fold_problems(shown: str, where: str, ids: list, true: list, views: dict, column: str,
                           matched: list) -> list[Problem]:
    sha = ids_sha256(ids)
    view_name = next((name for name, view in views.items() if view.get("ids") == sha), None)
    if view_name is None:
        nearest = min(views.items(), key=lambda item: abs(int(item[1].get("n", 0)) - len(ids)))
        return [Problem(shown, where, f"test-set fingerprint {_short(sha)} ({len(ids)} ids) matches no registered test "
                                      f"set; registered {nearest[0]}: {_short(nearest[1].get('ids'))} "
                                      f"({nearest[1].get('n')} ids)")]
    view, problems = views[view_name], []
    counts, registered_counts = counts_of(true), (view.get("counts") or {}).get(column)
    if registered_counts is not None and counts != registered_counts:
        problems.append(Problem(shown, where, f"per-class test counts ({_show_counts(counts)}) differ from the "
                                              f"registered {view_name} ({_show_counts(registered_counts)})"))
    elif (view.get("labelled") or {}).get(column) not in (None, labelled_sha256(ids, true)):
        problems.append(Problem(shown, where, f"true labels differ from the registered labels of {view_name} "
                                              "(same ids and counts, different (id, label) pairs)"))
    matched.append(view_name)
    return problems


def _rows(columns: dict) -> Counter:
    keys = [k for k in ("id", "fold", "true", "pred", "group") if k in columns]
    return Counter(zip(*(map(str, columns.get(k) or []) for k in keys)))


def _pooled_problems(result: Result, shown: str, task) -> tuple[list[Problem], set[str]]:
    """A pooled variant (BreakHis ``offdiag``) must be exactly the rows of its member variants."""
    predictions, problems, pooled = result.predictions, [], set()
    for variant, columns in predictions.items():
        members = task.pooled_members(variant, list(predictions))
        if members is None:
            continue
        pooled.add(variant)
        union = sum((_rows(predictions[m]) for m in members if m in predictions), Counter())
        if _rows(columns) != union:
            problems.append(Problem(shown, f'predictions["{variant}"]', f"is not the rows of the variants it pools "
                                                                        f"({', '.join(members)})"))
    return problems, pooled


def _sample_problems(result: Result, shown: str, entry: dict, column: str,
                     skip: set[str] = frozenset()) -> tuple[list[Problem], dict]:
    """Per-sample variants: unique ids, registered test sets; returns (problems, {variant: (id, fold) pairs}
    of the variants that predict records, not patients)."""
    problems, tests, pairs = [], entry.get("tests") or {}, {}
    for variant, columns in result.predictions.items():
        if "id" not in columns or variant in skip:
            continue
        frame = pd.DataFrame({"id": list(map(str, columns.get("id") or [])),
                              "fold": list(map(str, columns.get("fold") or [])),
                              "true": list(map(str, columns.get("true") or []))})
        for fold, rows in frame.groupby("fold", sort=True):
            where = f'predictions["{variant}"] fold {fold}'
            repeated = [(i, n) for i, n in Counter(rows["id"]).items() if n > 1]
            if repeated:
                shown_ids = ", ".join(f"{i!r} x{n}" for i, n in repeated[:3])
                problems.append(Problem(shown, where, f"ids are not unique: {len(repeated)} repeated ({shown_ids})"))
                continue
            key = _fold_key(fold, tests) if tests else None
            if tests and key is None:
                problems.append(Problem(shown, where, f"{fold!r} is not a test fold of the registered split "
                                                      f"(test folds: {', '.join(tests)})"))
                continue
            matched: list[str] = []
            if tests:
                problems += _variant_fold_problems(shown, where, list(rows["id"]), list(rows["true"]), tests[key],
                                                   column, matched)
            if not tests or (matched and matched[0] != "patients"):
                pairs.setdefault(variant, {}).update(dict.fromkeys(zip(rows["id"], [fold.split("/", 1)[0]] * len(rows))))
    return problems, pairs


def _kfold_problems(shown: str, entry: dict, pairs: dict) -> list[Problem]:
    """k-fold rules: every record is tested once, so the (id, fold) pairs recompute the split fingerprint:
    over all variants together where per-fold test sets are registered (BreakHis variants each
    predict one magnification), else for each variant on its own."""
    if entry.get("tests"):
        union = {pair: None for found in pairs.values() for pair in found}
        # a task that tests on some folds only (label-efficiency: fold 0): each was matched to its registered set
        every_fold = {fold for _, fold in union} == set(entry["tests"])
        groups = {"predictions": union} if union and every_fold else {}
    else:
        groups = {f'predictions["{variant}"]': found for variant, found in pairs.items()}
    problems = []
    for where, found in groups.items():
        ids, folds = zip(*found)
        recomputed = fingerprint(pd.Series(ids), pd.Series(folds))
        if recomputed != entry.get("fingerprint"):
            problems.append(Problem(shown, where, f"the split fingerprint recomputed from the predictions' (id, fold) "
                                                  f"pairs, {_short(recomputed)} ({len(ids)} ids), is not the "
                                                  f"registered {_short(entry.get('fingerprint'))}"))
    return problems


def _confusion_problems(result: Result, shown: str, entry: dict, task, column: str) -> list[Problem]:
    problems, labels, tests = [], result.labels, entry.get("tests") or {}
    for variant, columns in result.predictions.items():
        if "confusions" not in columns:
            continue
        if not task.stores_confusions:
            problems.append(Problem(shown, f'predictions["{variant}"]', f"task {task.name!r} stores per-sample "
                                    "predictions (id, fold, true, pred), not confusion matrices"))
            continue
        folds = list(map(str, columns.get("fold") or []))
        for fold, matrix in zip(folds, np.asarray(columns.get("confusions") or [], dtype=float)):
            key = _fold_key(fold, tests)
            wanted = ((((tests.get(key) or {}).get("records") or {}).get("counts") or {}).get(column)) if key else None
            if wanted is None:
                continue
            sums = {label: int(round(s)) for label, s in zip(labels, matrix.sum(axis=1))}
            expected = {label: int(wanted.get(label, 0)) for label in labels}
            if sums != expected:
                problems.append(Problem(shown, f'predictions["{variant}"].confusions (fold {fold})',
                                        f"rows sum to ({_show_counts(sums)}), not the registered per-class test "
                                        f"counts ({_show_counts(expected)})"))
                break
    return problems


def _label_problems(result: Result, shown: str, entry: dict, task, column: str) -> list[Problem]:
    classes = set((entry.get("classes") or {}).get(column) or {})
    labels = result.labels
    if not classes:
        return []
    if task.source_for(result.dataset):  # transfer: the mapped subset of the target's classes
        unknown = sorted(set(labels) - classes)
        return [Problem(shown, "labels", f"{unknown} are not classes of {result.dataset}")] if unknown else []
    if set(labels) != classes:
        return [Problem(shown, "labels", f"{sorted(set(labels))} is not the dataset's label set {sorted(classes)}")]
    return []


def _totals_problems(result: Result, shown: str, entry: dict, column: str) -> list[Problem]:
    """A k-fold entry registered without per-fold test sets (real data): each variant's test
    cells over all folds are the whole dataset, so their per-class counts are the dataset's."""
    classes, problems = (entry.get("classes") or {}).get(column), []
    for variant, columns in result.predictions.items():
        if classes and "id" in columns and "/" not in "".join(map(str, (columns.get("fold") or [])[:1])):
            counts = counts_of(columns.get("true") or [])
            if counts != {str(k): int(v) for k, v in classes.items()}:
                problems.append(Problem(shown, f'predictions["{variant}"]', f"per-class counts over all folds "
                                        f"({_show_counts(counts)}) are not the registered ({_show_counts(classes)})"))
    return problems


def integrity_problems(result: Result, shown: str) -> list[Problem]:
    """Every way the predictions contradict the registered split, or put test cells into a
    temperature slice (empty for an honest result)."""
    return _slice_problems(result, shown) + _split_problems(result, shown)


def _slice_problems(result: Result, shown: str) -> list[Problem]:
    """A temperature slice (``calibration``) must be cells the fold does not test, each once, in
    the variant's folds: a temperature fitted on test cells would flatter the scaled ECE."""
    from hemabench.results.calibration import resolve_slices

    try:
        predictions = resolve_slices(result.predictions)
    except (ValueError, TypeError, AttributeError) as exc:
        return [Problem(shown, "predictions", f"calibration: {exc}")]
    problems = []
    for variant, columns in predictions.items():
        cal = columns.get("calibration") if isinstance(columns, dict) else None
        if not isinstance(cal, dict) or "id" not in columns:
            continue
        tested = pd.DataFrame({"id": list(map(str, columns.get("id") or [])),
                               "fold": list(map(str, columns.get("fold") or []))})
        held = pd.DataFrame({"id": list(map(str, cal.get("id") or [])), "fold": list(map(str, cal.get("fold") or []))})
        where = f'predictions["{variant}"].calibration'
        strays = sorted(set(held["fold"]) - set(tested["fold"]))
        leaked = held.merge(tested, on=["id", "fold"])
        repeated = held.duplicated().sum()
        if strays:
            problems.append(Problem(shown, where, f"slice folds {strays[:3]} are not folds of the variant"))
        if len(leaked):
            problems.append(Problem(shown, where, f"{len(leaked)} slice cells are test cells of the same fold "
                                                  f"(e.g. {leaked['id'].iloc[0]!r} in {leaked['fold'].iloc[0]!r})"))
        if repeated:
            problems.append(Problem(shown, where, f"{repeated} slice cells appear twice in one fold"))
    return problems


def _split_problems(result: Result, shown: str) -> list[Problem]:
    from hemabench.datasets import DATASETS
    from hemabench.tasks import TASKS

    task, split = TASKS.get(result.task), result.split
    entry = registered(result.dataset, str(split.get("name")), split.get("version"))
    if not fully_registered(entry):
        why = "has no registered fingerprints" if entry is None else "has no registered test sets"
        synthetic = result.dataset in DATASETS and DATASETS.get(result.dataset).synthetic
        level = "error" if synthetic else "warning"
        return [Problem(shown, "split", f"{result.dataset} {split.get('name')} v{split.get('version')} {why}: "
                                        f"accepted only as an {UNREGISTERED}, never ranked", level)]
    source_problems = _source_problems(result, shown)
    if source_problems:
        return source_problems
    if split.get("fingerprint") != entry.get("fingerprint"):
        return [Problem(shown, "split.fingerprint", f"{split.get('fingerprint')} is not the registered fingerprint "
                                                    f"{entry.get('fingerprint')} of {result.dataset} "
                                                    f"{split.get('name')} v{split.get('version')}")]
    if task.panel_for(result.dataset):
        return _panel_problems(result, shown)
    column = task.label_column
    if task.scores_a_sample:  # robustness: a capped sample of one test fold
        return sampled_problems(result, shown, entry, task, column, _fold_key, _variant_fold_problems) + \
            _label_problems(result, shown, entry, task, column)
    problems, pooled = _pooled_problems(result, shown, task)
    found, pairs = _sample_problems(result, shown, entry, column, pooled)
    problems += found
    if entry.get("kind") == "kfold" and not any(p.field.startswith("predictions") for p in problems):
        problems += _kfold_problems(shown, entry, pairs)
        if not entry.get("tests"):
            problems += _totals_problems(result, shown, entry, column)
    problems += _confusion_problems(result, shown, entry, task, column)
    return problems + _label_problems(result, shown, entry, task, column)


def _source_problems(result: Result, shown: str) -> list[Problem]:
    """A cross-dataset task's training split must be registered too (its fingerprint, at least)."""
    source = result.source_split
    return _member_problems(source, shown, "source_split") if source else []


def _member_problems(member: dict, shown: str, field: str) -> list[Problem]:
    """A further split a result used (source, panel member): registered, with the registered fingerprint."""
    from hemabench.datasets import DATASETS

    name = str(member.get("dataset"))
    entry = registered(name, str(member.get("name")), member.get("version"))
    if entry is None:
        level = "error" if name in DATASETS and DATASETS.get(name).synthetic else "warning"
        return [Problem(shown, field, f"{name} {member.get('name')} v{member.get('version')} has no "
                                      f"registered fingerprint: accepted only as an {UNREGISTERED}, "
                                      "never ranked", level)]
    if member.get("fingerprint") != entry.get("fingerprint"):
        return [Problem(shown, f"{field}.fingerprint", f"{member.get('fingerprint')} is not the registered "
                                                       f"fingerprint {entry.get('fingerprint')} of {name} "
                                                       f"{member.get('name')} v{member.get('version')}")]
    return []


def _panel_problems(result: Result, shown: str) -> list[Problem]:
    """A panel task (blood-shift): every member split registered; per variant and fold (a dataset, or
    ``source->target``) unique ids, no more of them than the target's registered test set holds.
    Which cells a fold may hold depends on the class mapping, so membership itself is recomputed
    by ``validate`` from the data (the synthetic twins always; real data under --data-root)."""
    members = [result.split, *result.panel_splits]
    problems = [p for i, m in enumerate(members[1:]) for p in _member_problems(m, shown, f"panel_splits[{i}]")]
    sizes = {}
    for m in members:
        entry = registered(str(m.get("dataset")), str(m.get("name")), m.get("version")) or {}
        tests = entry.get("tests") or {}
        sizes[str(m.get("dataset"))] = sum(int(t["records"]["n"]) for t in tests.values()) if tests else None
    for variant, columns in result.predictions.items():
        frame = pd.DataFrame({"id": list(map(str, columns.get("id") or [])),
                              "fold": list(map(str, columns.get("fold") or []))})
        for fold, rows in frame.groupby("fold", sort=True):
            where, target = f'predictions["{variant}"] fold {fold}', fold.rpartition("->")[2]
            if target not in sizes:
                problems.append(Problem(shown, where, f"{target!r} is not a dataset of the panel ({', '.join(sizes)})"))
            elif rows["id"].duplicated().any():
                problems.append(Problem(shown, where, f"ids are not unique ({int(rows['id'].duplicated().sum())} "
                                                      "repeated)"))
            elif sizes[target] is not None and len(rows) > sizes[target]:
                problems.append(Problem(shown, where, f"{len(rows)} test cells, more than the {sizes[target]} of "
                                                      f"{target}'s registered test set"))
    return problems


def split_status(result: Result) -> str:
    """'registered' when the result's split (and source or panel splits) can be tied to the registry, else
    UNREGISTERED."""
    split = result.split
    entry = registered(result.dataset, str(split.get("name")), split.get("version"))
    ok = fully_registered(entry) and entry.get("fingerprint") == split.get("fingerprint")
    for member in ([result.source_split] if result.source_split else []) + list(result.panel_splits):
        member_entry = registered(str(member.get("dataset")), str(member.get("name")), member.get("version"))
        ok = ok and bool(member_entry) and member_entry.get("fingerprint") == member.get("fingerprint")
    return "registered" if ok else UNREGISTERED


def expected_weights(name: str) -> tuple[set[str], str]:
    """(the weights sha256 a result of registered encoder ``name`` may name, where they come from):
    pinned per hub revision, file or package in the spec; for offline encoders without a file
    (random, computed features) the sha256 this hemabench builds."""
    from hemabench.encoders import ENCODERS

    spec = ENCODERS.get(name)
    pinned = {s.sha256 for s in spec.weights if s.sha256}
    if spec.is_offline and not pinned:
        return {_offline_sha(name)}, "built by this hemabench"
    return pinned, f"pinned in {spec.source_file or name + '.yaml'}"


@cache
def _offline_sha(name: str) -> str:
    """The weights sha256 this hemabench builds for an offline encoder (once per process)."""
    from hemabench.encoders import load_encoder

    return load_encoder(name).weights_sha256


def weights_problems(result: Result, shown: str) -> list[Problem]:
    """A result naming a registered encoder must name its pinned weights (a fine-tune is a new encoder)."""
    from hemabench.encoders import ENCODERS

    name, sha = result.encoder, result.weights_sha256
    if name not in ENCODERS:
        return []
    allowed, where = expected_weights(name)
    if not allowed:
        return [Problem(shown, "encoder.weights_sha256", f"registered encoder {name!r} pins no weights sha256 yet: "
                                                         f"a maintainer adds 'sha256:' to its weights entries "
                                                         f"(hemabench/encoders/specs/{name}.yaml) first")]
    if sha not in allowed:
        return [Problem(shown, "encoder.weights_sha256", f"{sha} is not the weights of registered encoder {name!r} "
                                                         f"({', '.join(sorted(allowed))}, {where}); a fine-tune is a "
                                                         "new encoder with its own spec")]
    return []


def verification_problems(result: Result, shown: str) -> list[Problem]:
    """A ``verification`` block counts only when the maintainers' ledger lists the whole result's sha256."""
    from hemabench.submissions.ledger import load_ledger, result_sha256

    if result.verification is None:
        return []
    if result_sha256(result) not in load_ledger():
        return [Problem(shown, "verification", "is not backed by an entry of benchmarks/verified.yaml for this "
                                               "result's sha256: the result counts as self-reported", "warning")]
    return []
