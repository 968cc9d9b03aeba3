"""Task-specific sections of a board page, each found from the result JSON alone.

* label-efficiency curves: variants ``<classifier>/n=<n>`` with ``balanced_accuracy``;
* superclass rows (bone marrow -> blood): metrics ``<detail variant>/sensitivity_<SUPER>``;
* cross-magnification matrices (BreakHis): ``extra.crossmag``;
* attention galleries (AML MIL): ``extra.attention`` = {patient: {pred, run, cells: [{path, score}]}}.

A section whose data is absent is simply not shown, so new tasks need no code here
unless they bring a new kind of result.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pandas as pd

from hemabench.leaderboard import figures
from hemabench.leaderboard.collect import Board, anchor, slug
from hemabench.leaderboard.tables import as_table, pct, plain, score_cell, words

CURVE_VARIANT = re.compile(r"^(?P<clf>.+)/n=(?P<n>\d+)$")
CURVE_METRIC = "balanced_accuracy"


def curves(board: Board, site) -> dict | None:
    rows = []
    for encoder, entry in board.entries.items():
        for key, score in entry.result.metrics.items():
            variant, _, metric = key.rpartition("/")
            match = CURVE_VARIANT.match(variant)
            if match and metric == CURVE_METRIC:
                rows.append({"encoder": encoder, "classifier": match["clf"], "n": int(match["n"]),
                             "mean": score["mean"], "low": score["ci95"][0], "high": score["ci95"][1], "score": score})
    if not rows:
        return None
    frame = pd.DataFrame(rows).sort_values(["classifier", "n", "encoder"])
    main_variant, main_name = board.main_metric.rsplit("/", 1)
    references = None
    if main_name == CURVE_METRIC and not CURVE_VARIANT.match(main_variant):
        references = pd.DataFrame([{"encoder": e, "label": main_variant, "mean": entry.main.mean}
                                   for e, entry in board.entries.items()])
    labels = board.first.labels  # the curves are balanced accuracy: chance is 1 / classes
    figure = site.figure(f"{board.slug}-curves.svg", figures.curves_figure, frame, board.dataset, references,
                         1 / len(labels) if labels else None)
    table = frame.set_index(["classifier", "n", "encoder"])["score"].unstack("encoder")
    table.index = [f"{clf} n={n}" for clf, n in table.index]
    return {"figure": figure, "references": references is not None, "table": as_table(table.map(score_cell), "curves",
                                                "balanced accuracy, % (± std; CI = 95% interval of the mean over "
                                                "repetitions; spread = 2.5-97.5 percentiles of single repetitions)",
                                                index_name="classifier, labelled per class")}


def superclass_rows(board: Board) -> dict[str, tuple[dict, list]]:
    """name -> ({encoder: metric entry}, members) for the detail variant's superclass sensitivities."""
    out: dict[str, tuple[dict, list]] = {}
    for encoder, entry in board.entries.items():
        prefix = f"{entry.result.detail_variant}/sensitivity_"
        members = entry.result.extra.get("superclasses") or {}
        for key, score in entry.result.metrics.items():
            if key.startswith(prefix) and "/" not in key[len(prefix):]:
                name = key[len(prefix):]
                out.setdefault(name, ({}, [str(m) for m in members.get(name, [])]))[0][encoder] = score
    return out


def crossmag(board: Board, site) -> list[dict]:
    """Per encoder: the train x test magnification matrices (image- and patient-level accuracy)."""
    out = []
    for encoder in board.sorted_encoders():
        cm = board.entries[encoder].result.extra.get("crossmag")
        if not cm:
            continue
        mags = [f"{m}x" for m in cm.get("magnifications", [])]
        tables = []
        for name in ("accuracy", "patient_accuracy"):
            if name not in cm:
                continue
            frame = pd.DataFrame(cm[name], index=[f"train {m}" for m in mags], columns=[f"test {m}" for m in mags])
            tables.append(as_table(frame.map(lambda v: plain(pct(v), v, data={"value": repr(v)})),
                                   f"crossmag-{anchor(encoder)}-{name}", f"{name.replace('_', ' ')}, %",
                                   sortable=False, index_name="train \\ test"))
        summary = pd.DataFrame(cm.get("summary", {})).T.rename(index=words, columns=words)  # off_diagonal -> off diagonal
        figure = site.figure(f"{board.slug}-crossmag-{slug(encoder)}.svg", figures.heatmap,
                             [[None if v is None else 100 * v for v in row] for row in cm.get("patient_accuracy", [])],
                             mags, mags, f"{encoder}: patient accuracy (%)", "test magnification",
                             "train magnification", ".1f") if cm.get("patient_accuracy") else None
        out.append({"encoder": encoder, "tables": tables, "figure": figure,
                    "summary": as_table(summary.map(lambda v: plain(pct(v), v)), f"crossmag-{anchor(encoder)}-summary",
                                        "mean of the diagonal (same magnification) and off-diagonal cells, %",
                                        sortable=False, index_name="")})
    return out


def attention(board: Board, site) -> list[dict]:
    """Per encoder and patient: the top-attended cells, as thumbnails when the images are local."""
    out = []
    for encoder in board.sorted_encoders():
        att = board.entries[encoder].result.extra.get("attention")
        if not isinstance(att, dict) or not att:
            continue
        patients = []
        for patient in sorted(att):
            info = att[patient] if isinstance(att[patient], dict) else {}
            cells = [{"path": str(c.get("path", "")), "name": PurePosixPath(str(c.get("path", ""))).name,
                      "score": c.get("score"), "weight": _weight(c.get("score")),
                      "thumb": site.thumbnail(board.dataset, str(c.get("path", "")))}
                     for c in info.get("cells", []) if isinstance(c, dict)]
            patients.append({"patient": str(patient), "true": info.get("true", ""), "pred": info.get("pred", ""),
                             "run": info.get("run", ""), "cells": cells})
        shown = any(c["thumb"] for p in patients for c in p["cells"])
        why = "" if shown else site.images_note(board.dataset) or \
            f"images not shown: these files were not found in {board.dataset}"
        out.append({"encoder": encoder, "patients": patients, "images": shown, "images_note": why,
                    "note": board.entries[encoder].result.extra.get("attention_runs", "")})
    return out


def _weight(score) -> str:
    """An attention weight rounded for reading (3 significant digits); the exact one is in the result JSON."""
    try:
        return f"{float(score):.3g}"
    except (TypeError, ValueError):
        return "–"
