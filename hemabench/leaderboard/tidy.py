"""Tidy numeric downloads: one row per board, encoder and metric, numbers in their own columns.

The per-table CSVs hold what the page shows (text like ``35.4 ± 14.6 verified 1 CI [..]``);
a reader who wants to compute needs numbers instead. These long-format files have one
row per (board, encoder, metric) with mean, std, interval ends, the number of folds or
repetitions behind them and the probe's max_iter hits, the tier in the page's words
(``verified``, ``self-reported``, ``paper``), and an empty cell where a value does not exist.
"""

from __future__ import annotations

import csv
import io

from hemabench.leaderboard.collect import Board, board_title
from hemabench.leaderboard.downloads import FORMULA
from hemabench.leaderboard.summary import is_real

COLUMNS = ["board", "task", "dataset", "data", "task_version", "encoder", "tier", "rank", "metric", "main",
           "mean", "std", "ci_low", "ci_high", "spread_low", "spread_high", "n_folds", "max_iter_hits",
           "max_iter_fits"]


def _data(dataset: str) -> str:
    return "real" if is_real(dataset) else "synthetic"


def board_rows(board: Board) -> list[dict]:
    """Every stored metric of every run on the board, main metric first per encoder."""
    rows = []
    for encoder in board.sorted_encoders():
        entry = board.entries[encoder]
        result = entry.result
        hits, fits = result.max_iter_fits
        keys = [board.main_metric] + sorted(k for k in result.metrics if k != board.main_metric)
        for key in keys:
            if key not in result.metrics:
                continue
            score = result.score(key)
            rows.append({"board": board_title(board), "task": board.task, "dataset": board.dataset,
                         "data": _data(board.dataset), "task_version": board.version, "encoder": encoder,
                         "tier": entry.trust[0], "rank": board.ranks.get(encoder), "metric": key,
                         "main": key == board.main_metric, "mean": score.mean,
                         "std": score.std if len(score.values) > 1 else None,
                         "ci_low": score.ci95[0], "ci_high": score.ci95[1],
                         "spread_low": score.spread95[0] if score.spread95 else None,
                         "spread_high": score.spread95[1] if score.spread95 else None,
                         "n_folds": len(score.values), "max_iter_hits": hits if fits else None,
                         "max_iter_fits": fits or None})
    return rows


def reported_rows(values) -> list[dict]:
    """Published numbers (tier ``paper``): the value as mean, the paper's ± sd as std where printed."""
    return [{"board": f"{r.task} / {r.dataset}", "task": r.task, "dataset": r.dataset, "data": _data(r.dataset),
             "task_version": None, "encoder": r.encoder, "tier": "paper", "rank": None, "metric": r.metric,
             "main": None, "mean": r.value, "std": r.sd} for r in values]


def tidy_csv(rows: list[dict]) -> str:
    """Numbers as written by Python (full precision), booleans as true/false, missing as an empty cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _value(v) for k, v in row.items()})
    return out.getvalue()


def _value(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str) and v.startswith(FORMULA):  # a spreadsheet would run it as a formula
        return "'" + v
    return v
