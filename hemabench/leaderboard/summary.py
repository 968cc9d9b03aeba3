"""What a reader decides from in ten seconds: per task family, who leads and whether the lead is real.

Families come in a deliberate order (cell types first) and, within a family, boards on real
data before their synthetic twins. A board's lead is *significant* only when the best encoder
(by tie group, then mean) is significantly better than every other encoder in the paired
bootstrap of ``ranking``; otherwise the leader is tied with those it cannot be separated from.
Chance is 1 / number of classes for balanced accuracy (the score of a constant or random
guess); a result at or below it, or one whose pooled predictions fall ≥ 80% on one class, is
flagged wherever it is shown.
"""

from __future__ import annotations

import numpy as np

from hemabench.leaderboard.collect import Board, board_href, board_title
from hemabench.leaderboard.reported import task_family
from hemabench.results import Result

FAMILY_ORDER = ["cell types", "label efficiency", "transfer", "acquisition shift", "AML subtype (MIL)", "BreakHis"]
COLLAPSE_SHARE = 0.8


def family_rank(family: str) -> int:
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


def is_real(dataset: str) -> bool:
    """Real unless the dataset registry says it is a generated (synthetic) twin; unknown datasets count as real."""
    from hemabench.datasets import DATASETS

    return not (dataset in DATASETS and DATASETS.get(dataset).synthetic)


def column_key(task: str, dataset: str, version) -> tuple:
    """Sort key of a board column: family order, real data first, then task and dataset."""
    return (family_rank(task_family(task)), not is_real(dataset), task, dataset, str(version))


def chance(result: Result) -> float | None:
    """The chance level of the main metric (balanced accuracy family: 1 / classes), None where undefined."""
    if "balanced_accuracy" not in result.main_metric_name or not result.labels:
        return None
    return 1.0 / len(result.labels)


def collapsed(result: Result) -> tuple[str, float] | None:
    """(class, share) when ≥ 80% of the pooled predictions fall on one class, from the stored confusion matrix."""
    cm = result.confusion_matrix
    counts = np.asarray(cm.get("counts") or [], dtype=float)
    if counts.ndim != 2 or counts.sum() <= 0 or len(cm.get("labels") or []) != counts.shape[1]:
        return None
    predicted = counts.sum(axis=0) / counts.sum()
    top = int(predicted.argmax())
    return (str(cm["labels"][top]), float(predicted[top])) if predicted[top] >= COLLAPSE_SHARE else None


def flags(result: Result) -> list[str]:
    """Short warnings for a result: at or below chance, collapsed onto one class."""
    out = []
    level = chance(result)
    if level is not None and result.main.mean <= level:
        out.append(f"at or below chance ({100 * level:.1f})")
    hit = collapsed(result)
    if hit:
        out.append(f"predicts {hit[0]} for {100 * hit[1]:.0f}% of samples")
    return out


def lead(board: Board) -> tuple[list[str], bool]:
    """(leader first, then every encoder not separable from it; significant?) for one board."""
    order = board.sorted_encoders()
    leader = order[0]
    beaten = {c.b if c.a == leader else c.a for c in board.comparisons
              if c.significant and leader in (c.a, c.b) and (c.diff > 0) == (c.a == leader)}
    tied = [e for e in order[1:] if e not in beaten]
    return [leader, *tied], len(order) > 1 and not tied


def summary_rows(boards: list[Board]) -> list[dict]:
    """One row per board in column order: family, board, real?, leader(s), verdict, leader's score, flags."""
    rows = []
    for b in sorted(boards, key=lambda b: column_key(b.task, b.dataset, b.version)):
        leaders, significant = lead(b)
        n = len(b.entries)
        verdict = ("only entry" if n == 1 else "significant lead" if significant
                   else f"tie of {len(leaders)}" if len(leaders) < n else f"all {n} tied")
        rows.append({"family": task_family(b.task), "board": b, "real": is_real(b.dataset), "leaders": leaders,
                     "verdict": verdict, "significant": significant, "score": b.entries[leaders[0]].main,
                     "flags": flags(b.entries[leaders[0]].result)})
    return rows


def flagged(cell: dict, result: Result) -> dict:
    """A score cell whose second line also shows the max_iter hits and ⚠ (reason in the tooltip) where
    the result is at chance or collapsed; the number itself stays as it is."""
    reasons, stopped = flags(result), result.max_iter_note
    if (not reasons and not stopped) or cell.get("text") == "–":
        return cell
    marks = " · ".join(filter(None, [stopped, "⚠" if reasons else ""]))
    return {**cell, "sub": f"{cell.get('sub') or ''} · {marks}".lstrip(" ·"),
            "cls": f"{cell.get('cls') or ''}{' below-chance' if reasons else ''}".strip(),
            "title": f"{cell.get('title') or ''}; {'; '.join(reasons + ([stopped] if stopped else []))}".lstrip("; "),
            "data": {**(cell.get("data") or {}), **({"flags": "; ".join(reasons)} if reasons else {})}}


def summary_table(boards: list[Board]) -> tuple[dict, dict | None]:
    """The index's opening tables: per family and board, who leads and whether the lead is significant.

    The first holds every real-data board and the boards of families that have no real one (it must fit
    above the fold); the second, shown collapsed, the synthetic twins of families that do."""
    from hemabench.leaderboard.names import metric_label
    from hemabench.leaderboard.tables import pct, plain

    all_rows = summary_rows(boards)
    with_real = {r["family"] for r in all_rows if r["real"]}
    rows, twins = [], []
    for i, r in enumerate(all_rows):
        b, score = r["board"], r["score"]
        level = chance(b.entries[r["leaders"][0]].result)
        cells = [plain(board_title(b), href=board_href(b), title=metric_label(b.main_metric)),
                 plain("real" if r["real"] else "synthetic", cls="data-real" if r["real"] else "data-synthetic"),
                 plain(", ".join(r["leaders"][:3]) + (f" +{len(r['leaders']) - 3}" if len(r["leaders"]) > 3 else ""),
                       title=", ".join(r["leaders"])),
                 plain(r["verdict"] + (" · leader ⚠" if r["flags"] else ""),  # a lead at chance is no lead
                       cls="lead-sig" if r["significant"] and not r["flags"] else "lead-tie", title="; ".join(r["flags"])),
                 plain(f"{pct(score.mean)}" + (" ⚠" if r["flags"] else ""), score.mean,
                       title="; ".join([metric_label(b.main_metric), *r["flags"]])),
                 plain("–" if level is None else pct(level), level)]
        row = {"id": f"lead-{i}", "cls": "real" if r["real"] else "synthetic", "head": plain(r["family"]),
               "cells": cells}
        (twins if not r["real"] and r["family"] in with_real else rows).append(row)
    columns = [{"text": "task family"}, {"text": "board"}, {"text": "data"}, {"text": "leader (tied with)"},
               {"text": "lead", "title": "significant: the leader is significantly better than every other encoder "
                                         "(paired bootstrap, 95%); tie: not separable from those listed"},
               {"text": "leader's main metric, % ↑", "cls": "wrap"}, {"text": "chance, %"}]
    table = {"id": "summary", "sortable": False, "rows": rows, "columns": columns, "caption": ""}
    return table, ({**table, "id": "summary-twins", "rows": twins} if twins else None)
