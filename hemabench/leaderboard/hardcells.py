"""Hard cells: test cells that (nearly) every encoder on a board misclassifies.

A cell that at least ``THRESHOLD`` of the board's encoders get wrong is a candidate label
error or a truly ambiguous cell; a lab wants to look at it. Per board (from the stored
per-sample predictions of the detail variant): the cells with their true label and the
most common wrong label, the share of each class's test cells that are hard, and whether
the hard cells cluster in a few classes. Boards whose results hold confusion matrices only
(repeated few-shot fits) have no per-cell predictions and get no section.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from hemabench.leaderboard.collect import Board
from hemabench.leaderboard.tables import as_table, pct, plain
from hemabench.results import Result

THRESHOLD = 0.8  # share of encoders that misclassify a cell
MIN_ENCODERS = 2  # with one encoder every error would be "hard"
SHOWN = 60  # cells listed (and thumbnailed) per board
CLUSTER = 0.8  # "clustered": this share of hard cells lies in at most a third of the classes


def _cells(result: Result) -> dict[tuple[str, str], tuple[str, str]] | None:
    """(fold, id) -> (true, pred) of the detail variant, or None without per-sample predictions."""
    p = result.variant_predictions(result.detail_variant) or {}
    if not all(k in p for k in ("id", "fold", "true", "pred")):
        return None
    return {(str(f), str(i)): (str(t), str(q)) for i, f, t, q in zip(p["id"], p["fold"], p["true"], p["pred"])}


def shared_cells(predictions: dict[str, dict]) -> set:
    """The (fold, id) keys every encoder predicted."""
    return set.intersection(*(set(p) for p in predictions.values())) if predictions else set()


def votes_needed(n_encoders: int, threshold: float = THRESHOLD) -> int:
    """How many encoders must misclassify a cell for it to be hard."""
    return math.ceil(threshold * n_encoders - 1e-9)


def hard_cells(predictions: dict[str, dict], threshold: float = THRESHOLD, common: set | None = None) -> pd.DataFrame:
    """``predictions``: encoder -> {(fold, id): (true, pred)}. Cells every encoder predicted (``common``:
    ``shared_cells``, when known), that at least ``threshold`` of them misclassify: columns fold, id, true,
    wrong (most common wrong label; ties: alphabetical), n_wrong, n_encoders."""
    encoders = list(predictions)
    common = shared_cells(predictions) if common is None else common
    need = votes_needed(len(encoders), threshold)
    rows = []
    for key in sorted(common):
        true = predictions[encoders[0]][key][0]
        wrong = [p[key][1] for p in predictions.values() if p[key][1] != p[key][0]]
        if len(wrong) >= need and wrong:
            top = sorted(Counter(wrong).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            rows.append({"fold": key[0], "id": key[1], "true": true, "wrong": top, "n_wrong": len(wrong),
                         "n_encoders": len(encoders)})
    return pd.DataFrame(rows, columns=["fold", "id", "true", "wrong", "n_wrong", "n_encoders"])


def class_shares(hard: pd.DataFrame, predictions: dict[str, dict], common: set | None = None) -> pd.DataFrame:
    """Per true class: test cells, hard cells, their share of the class and of all hard cells."""
    first = next(iter(predictions.values()))
    common = shared_cells(predictions) if common is None else common
    totals = Counter(first[k][0] for k in common)
    counts = Counter(hard["true"])
    frame = pd.DataFrame({"test cells": totals, "hard cells": {c: counts.get(c, 0) for c in totals}}).fillna(0)
    frame["share of class"] = frame["hard cells"] / frame["test cells"]
    frame["share of hard cells"] = frame["hard cells"] / max(len(hard), 1)
    # ties broken by class name: the Counter's order follows a set, i.e. PYTHONHASHSEED
    frame = frame.sort_index()
    return frame.sort_values(["hard cells", "share of class"], ascending=False, kind="stable")


def clustering(shares: pd.DataFrame, n_hard: int) -> dict:
    """The fewest classes holding ``CLUSTER`` of the hard cells, and whether that is few."""
    if n_hard == 0:
        return {"classes": [], "k": 0, "of": len(shares), "clustered": False}
    cumulative = shares["hard cells"].cumsum() / n_hard
    k = int((cumulative < CLUSTER - 1e-12).sum()) + 1
    return {"classes": list(shares.index[:k]), "k": k, "of": len(shares), "clustered": k <= max(1, len(shares) // 3)}


def item_words(dataset: str) -> tuple[str, str]:
    """What a test item of the dataset is (plural, singular): patients for patient bags, patches for tissue
    images (BreakHis), else cells; read from what the registered dataset provides."""
    from hemabench.datasets import DATASETS

    provides = DATASETS.get(dataset).provides if dataset in DATASETS else frozenset()
    return ("patients", "patient") if "bag-labels" in provides else ("patches", "patch") \
        if "tissue-labels" in provides else ("cells", "cell")


def _dataset_of(board: Board, fold: str) -> str:
    """Cross-dataset folds (``source->target``) hold the target's cells."""
    return fold.split("->", 1)[1] if "->" in fold else board.dataset


def hardcells_section(board: Board, site) -> dict | None:
    predictions = {e: cells for e, entry in board.entries.items() if (cells := _cells(entry.result)) is not None}
    if not predictions:
        return None
    if len(predictions) < MIN_ENCODERS:
        return {"note": f"needs per-cell predictions of at least {MIN_ENCODERS} encoders; this board has "
                        f"{len(predictions)}", "cells": [], "shares": None}
    common = shared_cells(predictions)
    hard = hard_cells(predictions, common=common)
    shares = class_shares(hard, predictions, common)
    cluster = clustering(shares, len(hard))
    cells = [{"id": r.id, "fold": r.fold, "true": r.true, "wrong": r.wrong,
              "votes": f"{r.n_wrong}/{r.n_encoders}", "thumb": site.thumbnail(_dataset_of(board, r.fold), r.id, "JPEG")}
             for r in hard.sort_values(["true", "n_wrong", "id"], ascending=[True, False, True]).head(SHOWN).itertuples()]
    word, one = item_words(board.dataset)
    table = shares.copy()
    for column in ("share of class", "share of hard cells"):
        table[column] = table[column].map(lambda v: plain(pct(v), v))
    table.columns = [c.replace("cells", word) for c in table.columns]
    return {"note": f"{word} misclassified by at least {votes_needed(len(predictions))} of {len(predictions)} encoders "
                    f"({pct(THRESHOLD, 0)}%); variant {board.first.detail_variant}", "word": word, "one": one,
            "n_hard": len(hard), "n_test": int(shares["test cells"].sum()), "shown": len(cells), "cells": cells,
            "cluster": cluster, "cluster_share": pct(CLUSTER, 0),
            "shares": as_table(table, "hard-classes", f"hard {word} per true class", index_name="class")}
