"""PathoROB's robustness index on the ``blood-shift`` panel, the panel's datasets standing for centres.

PathoROB (Kömen, de Jong, Hense et al., "Towards robust foundation models for digital pathology",
Nature Communications 2026, arXiv:2507.17845; code: github.com/bifold-pathomics/PathoROB) asks, of
each sample's k nearest neighbours in embedding space, how many share its biology but come from
another centre (SO) and how many come from its centre but show other biology (OS). Here the
biology is the cell class under the panel's mapping and the centre is the dataset (its lab, stain
and scanner). The index is

    RI = sum_i SO_i / sum_i (SO_i + OS_i)

over every cell i (its neighbours of its class and centre, or of neither, count in neither term):
1 when a cell's neighbours beyond its own lab and class are all of its class, 0 when all of its lab.
As in PathoROB's code (``robustness_index_utils.aggregate_stats``), the counts are pooled over the
cells before the ratio is taken, not averaged as per-cell ratios.

Cells: each dataset's in-domain test cells of the classes that every panel dataset tests, at most
``index_cells`` per dataset and class (a seeded choice among them sorted by id), so the design is
as balanced over centre x class as the data allow (PathoROB's datasets are built balanced).
Neighbours: L2-normalised embeddings (PathoROB normalises likewise), Euclidean distance, the cell
itself left out (PathoROB leaves out the query's whole slide; these cells carry no slide), nearest
first, ties broken by table order.

What a result stores (``extra.robustness_index``) is the table of cells (id, centre, class) and
each cell's ``k`` neighbours as row numbers into it, nearest first, one space-separated line per
cell (a result file stays small and readable); ``index_scores`` re-derives the cells from the
stored in-domain predictions and requires the table to hold exactly them, then recounts SO and OS
from the stored neighbours, so a changed number, class or cell, or a dropped table, is caught by
``validate``.
Interval: each replicate redraws the cells within each dataset (``results.bootstrap.Design``, fold
= dataset) with their neighbour lists fixed (PathoROB's own bootstrap resamples cells likewise),
the percentile interval re-centred on the estimate as every hemabench interval is.
"""

from __future__ import annotations

import numpy as np

from hemabench.results.bootstrap import Design
from hemabench.results.intervals import N_BOOTSTRAP, percentile_interval
from hemabench.results.metrics import aggregate
from hemabench.tasks.params import positive_int

INDEX = "robustness_index"  # the key of the neighbour table in a result's ``extra``
PREFIX = "shift"
BLOCK = 1024  # query rows per distance block
INDEX_PARAMS = {"index_k": 11, "index_cells": 100}  # k: PathoROB's default for Camelyon (its smallest)


INDEX_RULES = {"index_k": positive_int(), "index_cells": positive_int()}


def index_cells(ids, centres, classes, cap: int, seed: int) -> np.ndarray:
    """Row numbers of the cells the index uses: per centre (sorted) and class tested by every centre
    (sorted), at most ``cap`` cells chosen by ``default_rng(seed)`` among them sorted by id, in id order."""
    ids, centres, classes = (np.asarray(a, dtype=str) for a in (ids, centres, classes))
    names = sorted(set(centres.tolist()))
    shared = sorted(set.intersection(*(set(classes[centres == c].tolist()) for c in names))) if names else []
    rng, rows = np.random.default_rng(seed), []
    for centre in names:
        for label in shared:
            group = np.flatnonzero((centres == centre) & (classes == label))
            group = group[np.argsort(ids[group], kind="stable")]
            rows.append(np.sort(group[rng.permutation(len(group))[:cap]]))
    return np.concatenate(rows).astype(int) if rows else np.zeros(0, dtype=int)


def nearest_others(features: np.ndarray, k: int) -> np.ndarray:
    """(n, min(k, n - 1)) row numbers of each row's nearest other rows, nearest first: L2-normalised
    rows, Euclidean distance, ties by row order."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    sq, n = (x * x).sum(axis=1), len(x)
    k = min(k, n - 1)
    out = np.zeros((n, max(k, 0)), dtype=np.int64)
    for start in range(0, n, BLOCK):
        q = x[start:start + BLOCK]
        d = sq[start:start + BLOCK, None] - 2.0 * q @ x.T + sq[None, :]
        d[np.arange(len(q)), np.arange(start, start + len(q))] = np.inf  # not its own neighbour
        out[start:start + BLOCK] = np.argsort(d, axis=1, kind="stable")[:, :k]
    return out


def index_table(ids, centres, classes, features: np.ndarray, k: int, cap: int, seed: int) -> dict | None:
    """The stored table (cells and their neighbours), or None where fewer than two centres share a class."""
    rows = index_cells(ids, centres, classes, cap, seed)
    picked = [np.asarray(a, dtype=str)[rows] for a in (ids, centres, classes)]
    if len(set(picked[1].tolist())) < 2:
        return None
    return {"k": int(k), "id": picked[0].tolist(), "centre": picked[1].tolist(), "class": picked[2].tolist(),
            "neighbours": [" ".join(map(str, row)) for row in nearest_others(np.asarray(features)[rows], k).tolist()]}


def neighbour_rows(table: dict) -> np.ndarray:
    """(n, k) row numbers from the stored lines."""
    lines = table.get("neighbours")
    if not isinstance(lines, list) or len(lines) != len(table.get("id") or []) or \
            not all(isinstance(line, str) and line.replace(" ", "").isdigit() for line in lines):
        raise ValueError(f"extra.{INDEX}.neighbours must hold one line of space-separated row numbers per cell")
    rows = [line.split() for line in lines]
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"extra.{INDEX}.neighbours holds lines of different lengths")
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), -1)


def neighbour_counts(table: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, (SO, OS): its neighbours of its class from another centre, of another class from its centre."""
    centre, label = np.asarray(table["centre"], dtype=str), np.asarray(table["class"], dtype=str)
    n, nb = len(centre), neighbour_rows(table)
    if table.get("k") != k or nb.shape[1] != min(k, n - 1):
        raise ValueError(f"extra.{INDEX} holds {nb.shape[1]} neighbours per cell (k = {table.get('k')!r}); "
                         f"index_k = {k} needs {min(k, n - 1)}")
    if nb.size and (nb.min() < 0 or nb.max() >= n or np.any(nb == np.arange(n)[:, None])):
        raise ValueError(f"extra.{INDEX}.neighbours holds a row number outside the table or a cell's own")
    same_class, same_centre = label[nb] == label[:, None], centre[nb] == centre[:, None]
    return (same_class & ~same_centre).sum(axis=1).astype(float), (~same_class & same_centre).sum(axis=1).astype(float)


def index_scores(own: dict, table: dict | None, k: int, cap: int, seed: int,
                 n_boot: int = N_BOOTSTRAP) -> dict[str, dict]:
    """``shift/robustness_index`` and the shares of SO and OS among all neighbours, each with a 95%
    interval, from the in-domain predictions ``own`` (fold = dataset) and the stored table."""
    ids, centres, classes = (np.asarray(own[key], dtype=str) for key in ("id", "fold", "true"))
    rows = index_cells(ids, centres, classes, cap, seed)
    if table is None:
        if len(set(centres[rows].tolist())) > 1:
            raise ValueError(f"extra.{INDEX} is missing, but two or more datasets share classes: the index needs it")
        return {}
    for key, column in (("id", ids), ("centre", centres), ("class", classes)):
        if list(table.get(key) or []) != column[rows].tolist():
            raise ValueError(f"extra.{INDEX}.{key} is not that of the in-domain test cells the index uses "
                             f"(index_cells = {cap}, seed {seed})")
    so, os_ = neighbour_counts(table, k)
    design = Design.build(centres[rows], ids[rows])
    n_neighbours = max(1, min(k, len(rows) - 1))

    def statistics(w: np.ndarray) -> dict[str, np.ndarray]:  # (b, n) cell weights -> (b,) per statistic
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"robustness_index": (w @ so) / (w @ (so + os_)),
                    "knn_same_class_other_centre": (w @ so) / (w.sum(axis=1) * n_neighbours),
                    "knn_other_class_same_centre": (w @ os_) / (w.sum(axis=1) * n_neighbours)}

    point = statistics(np.ones((1, len(rows))))
    boot = [statistics(counts[:, design.unit]) for counts in design.unit_counts(seed, n_boot)]
    out = {}
    for name, value in point.items():
        estimate = float(value[0])
        if np.isfinite(estimate):
            replicates = np.concatenate([b[name] for b in boot])
            out[f"{PREFIX}/{name}"] = {**aggregate([estimate]), "ci95": percentile_interval(replicates, estimate)}
    return out
