"""The acquisition-shift section of a ``blood-shift`` board: per encoder, the source x target
matrices of balanced accuracy and ECE (diagonal = in-domain), read from the per-fold metric
values of the ``in-domain`` (fold = dataset) and ``shifted`` (fold = ``source->target``) variants."""

from __future__ import annotations

import pandas as pd

from hemabench.leaderboard import figures
from hemabench.leaderboard.collect import Board, anchor, slug
from hemabench.leaderboard.tables import as_table, pct, plain
from hemabench.results import Result

VARIANTS = ("in-domain", "shifted")


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
