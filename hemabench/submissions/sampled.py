"""Integrity of a result that scores a capped sample of one registered test fold (``robustness``).

The registry holds hashes of each test fold, not its ids, so which cells were sampled cannot be
recomputed without the data. What can be checked from the result alone: each variant and fold
is a registered test fold, its ids are unique, and its per-class counts are exactly those the
task's sampling rule gives for that fold's registered counts (``Task.tested_counts``); where
the cap takes the whole fold, the ids must be the registered test set itself. Every variant
holding the same cells is checked by the task's own scores (``validate`` recomputes them).
"""

from __future__ import annotations

import pandas as pd

from hemabench.errors import HemabenchError
from hemabench.results.result import Result
from hemabench.splits.fingerprints import counts_of
from hemabench.submissions.layout import Problem


def sampled_problems(result: Result, shown: str, entry: dict, task, column: str, fold_key, whole_fold) -> list[Problem]:
    """``fold_key(fold, tests)``: the registered fold of a prediction fold; ``whole_fold(...)``: the
    full check of a variant fold against the registered views (used where nothing was capped)."""
    params = result.params
    try:
        task = task.with_params(**{k: v for k, v in params.items() if k in task.params})
    except HemabenchError as exc:
        return [Problem(shown, "task_metadata.params", str(exc))]
    problems, tests = [], entry.get("tests") or {}
    for variant, columns in result.predictions.items():
        frame = pd.DataFrame({"id": list(map(str, columns.get("id") or [])),
                              "fold": list(map(str, columns.get("fold") or [])),
                              "true": list(map(str, columns.get("true") or []))})
        for fold, rows in frame.groupby("fold", sort=True):
            where, key = f'predictions["{variant}"] fold {fold}', fold_key(fold, tests)
            if key is None:
                problems.append(Problem(shown, where, f"{fold!r} is not a test fold of the registered split "
                                                      f"(test folds: {', '.join(tests)})"))
                continue
            if rows["id"].duplicated().any():
                problems.append(Problem(shown, where, f"ids are not unique ({int(rows['id'].duplicated().sum())} "
                                                      "repeated)"))
                continue
            view = tests[key]["records"]
            registered_counts = (view.get("counts") or {}).get(column) or {}
            wanted = task.tested_counts(registered_counts)
            if wanted == registered_counts:  # nothing capped: the registered test set itself
                problems += whole_fold(shown, where, list(rows["id"]), list(rows["true"]), {"records": view},
                                       column, [])
            elif counts_of(rows["true"]) != wanted:
                shown_counts = lambda c: ", ".join(f"{k} {v}" for k, v in sorted(c.items()))  # noqa: E731
                problems.append(Problem(shown, where, f"per-class test counts ({shown_counts(counts_of(rows['true']))}) "
                                                      f"are not the sample the task draws from the registered fold "
                                                      f"({shown_counts(wanted)})"))
    return problems
