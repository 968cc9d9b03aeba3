"""The acquisition-shift section of a ``blood-shift`` board: per encoder, the source x target
matrices of balanced accuracy and ECE (diagonal = in-domain), read from the per-fold metric
values of the ``in-domain`` (fold = dataset) and ``shifted`` (fold = ``source->target``) variants;
and one table of PathoROB's robustness index (``shift/robustness_index``, tasks/shift_index.py)."""

from __future__ import annotations

import pandas as pd

from hemabench.leaderboard import figures
from hemabench.leaderboard.collect import Board, anchor, slug
from hemabench.leaderboard.tables import as_table, pct, plain, score_cell
from hemabench.results import Result

VARIANTS = ("in-domain", "shifted")
INDEX_COLUMNS = {"shift/robustness_index": "robustness index ↑",
                 "shift/knn_same_class_other_centre": "neighbours of its class from another dataset ↑",
                 "shift/knn_other_class_same_centre": "neighbours of another class from its dataset ↓"}


def _fold_values(result: Result, variant: str, metric: str) -> dict[str, float]:
    """fold -> value, in the order the scorer stores them (first appearance in the stored predictions)."""
    folds = list(dict.fromkeys(str(f) for f in result.predictions[variant]["fold"]))
    values = (result.metrics.get(f"{variant}/{metric}") or {}).get("values") or []
    return dict(zip(folds, values)) if len(values) == len(folds) else {}


def shift_matrix(result: Result, metric: str) -> pd.DataFrame | None:
    """Rows = source (fitted on), columns = target (tested on)."""
    if not all(v in result.predictions for v in VARIANTS):
        return None
    panel = [str(d) for d in result.extra.get("panel") or []]
    frame = pd.DataFrame(index=panel, columns=panel, dtype=float)
    for dataset, value in _fold_values(result, "in-domain", metric).items():
        frame.loc[dataset, dataset] = value
    for pair, value in _fold_values(result, "shifted", metric).items():
        source, _, target = pair.partition("->")
        frame.loc[source, target] = value
    return frame


def shift_section(board: Board, site) -> list[dict]:
    out = []
    for encoder in board.sorted_encoders():
        result = board.entries[encoder].result
        accuracy, ece = shift_matrix(result, "balanced_accuracy"), shift_matrix(result, "ece")
        if accuracy is None or accuracy.empty:
            continue
        labels = list(accuracy.index)
        figure = site.figure(f"{board.slug}-shift-{slug(encoder)}.svg", figures.heatmap, (100 * accuracy).values,
                             labels, labels, f"{encoder}: balanced accuracy (%)", "tested on", "fitted on", ".1f")
        tables = [as_table(m.map(lambda v: plain(pct(v), v, data={"value": repr(v)})),
                           f"shift-{anchor(encoder)}-{name}", f"{caption}, % (rows: fitted on, columns: tested on)",
                           sortable=False, index_name="fitted on \\ tested on")
                  for name, caption, m in (("ba", "balanced accuracy", accuracy), ("ece", "ECE (15 bins)", ece))
                  if m is not None]
        out.append({"encoder": encoder, "figure": figure, "tables": tables,
                    "missing": result.extra.get("missing") or []})
    return out


def index_section(board: Board) -> dict | None:
    """The robustness index of every encoder with one (shares of all k neighbours beside it), and
    the value of embeddings that carry neither class nor dataset: (C - 1) / (C + K - 2)."""
    rows, tables = {}, {}
    for encoder in board.sorted_encoders():
        result = board.entries[encoder].result
        if "shift/robustness_index" not in result.metrics:
            continue
        tables[encoder] = result.extra.get("robustness_index") or {}
        rows[encoder] = {**{words: score_cell(result.metrics.get(key), scale=1, digits=3)
                            for key, words in INDEX_COLUMNS.items()},
                         "cells": len(tables[encoder].get("id") or []), "k": tables[encoder].get("k")}
    if not rows:
        return None
    first = next(iter(tables.values()))
    centres, classes = len(set(first.get("centre") or [])), len(set(first.get("class") or []))
    chance = (centres - 1) / (centres + classes - 2) if centres + classes > 2 else None
    return {"k": first.get("k"), "centres": centres, "classes": classes, "chance": chance,
            "table": as_table(pd.DataFrame(rows).T, "shift-index", "PathoROB's robustness index (95% bootstrap "
                                                                  "interval: cells redrawn within each dataset)",
                              index_name="encoder")}
