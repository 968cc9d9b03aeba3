"""Tables for the site: pandas computes them, ``as_table`` turns a frame of cells into the plain
structure one template macro renders (every value escaped by jinja2, never marked safe).

A cell is a dict: ``text`` (shown), optional ``sort`` (the sort key, exact), ``href``,
``title``, ``cls`` and ``data`` (extra ``data-*`` attributes, exact values, e.g. for tests).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from hemabench.leaderboard.collect import anchor
from hemabench.leaderboard.names import metric_label, metric_unit
from hemabench.results import Score

HEX = re.compile(r"[0-9a-f]{16,}")


def pct(value, digits: int = 1, scale: float = 100) -> str:
    """A fraction as a percentage with fixed digits ("–" when missing); ``scale=1`` for plain numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{scale * float(value):.{digits}f}"


def score_cell(score: Score | dict | None, href: str | None = None, rank: int | None = None, scale: float = 100,
               digits: int = 1, note: str = "") -> dict:
    """mean ± std (no ± for a single split or run: there is no spread to show), then "CI [low, high]"
    (the 95% interval of the mean) and, for repeated runs, "spread [..]" (single runs), labelled apart;
    ``note`` (e.g. a probe stopped at max_iter) is shown beside the number. Tooltips are rounded; the
    exact numbers are in ``data-*`` attributes and the downloads."""
    if not score:
        return {"text": "–", "sort": ""}
    get = (lambda k: getattr(score, k, None)) if isinstance(score, Score) else score.get
    mean, std = float(get("mean")), float(get("std"))
    low, high = (get("ci95") or [None, None])[:2]
    spread = get("spread95")
    n = len(get("values") or ())
    single = n == 1 and std == 0
    text = pct(mean, digits, scale) + ("" if single else f" ± {pct(std, digits, scale)}") + (f" ({note})" if note else "")
    sub = f"CI [{pct(low, digits, scale)}, {pct(high, digits, scale)}]" if low is not None else None
    if spread:
        sub += f" · spread [{pct(spread[0], digits, scale)}, {pct(spread[1], digits, scale)}]"
    title = (f"mean {_round(mean)}" + ("" if single else f", std {_round(std)}") +
             (f" over {n} folds or repetitions" if n else "") + f", 95% CI of the mean [{_round(low)}, {_round(high)}]")
    if spread:
        title += f", spread of single runs (2.5-97.5 percentiles) [{_round(spread[0])}, {_round(spread[1])}]"
    if note:
        title += f"; {note}: probe fits that stopped at the iteration limit / all fits"
    return {"text": text, "sub": sub, "sort": repr(mean), "href": href, "rank": rank, "title": title,
            "data": {"mean": repr(mean), "std": repr(std), "low": repr(low), "high": repr(high)}}


def unit_cell(score, key: str, **extra) -> dict:
    """``score_cell`` in the unit of metric ``key`` (``names.metric_unit``: NLL and Brier as stored, else %)."""
    _, scale, digits = metric_unit(key)
    return score_cell(score, scale=scale, digits=digits, **extra)


def metric_cell(key: str) -> dict:
    """A metric key in words (``names.metric_label``), the key itself on hover and as the sort key."""
    return plain(metric_label(key), key, title=key)


def words(value) -> str:
    """A raw key or flag for reading: underscores as spaces, True / False as yes / no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("_", " ")


def short_hash(value) -> str:
    """A long hex digest (sha256, git commit, split fingerprint) cut to its first 12 characters + "…";
    anything else is returned as it is."""
    text = "" if value is None else str(value)
    return text[:12] + "…" if HEX.fullmatch(text) else text


def hash_cell(value) -> dict:
    """A table cell showing ``short_hash(value)``, the full value in its tooltip and sort key."""
    text = "" if value is None else str(value)
    return plain(short_hash(text) or "–", text, title=text or None, cls="hash" if text else None)


def _round(value) -> str:
    return "–" if value is None else f"{float(value):.4g}"


def trust_cell(trust: tuple[str, str]) -> dict:
    """A result's trust (``Entry.trust``: tier, who verified it) as a badge cell."""
    tier, title = trust
    return {"text": "", "sort": tier, "badge": tier, "title": title, "cls": f"tier-{tier}", "data": {"tier": tier}}


def with_badge(cell: dict, trust: tuple[str, str]) -> dict:
    """A score cell that also shows its result's trust tier (``Entry.trust``)."""
    badge = trust_cell(trust)
    return {**cell, "badge": badge["badge"], "cls": " ".join(filter(None, [cell.get("cls"), badge["cls"]])),
            "data": {**(cell.get("data") or {}), "tier": badge["badge"]},
            "title": f"{cell.get('title', '')}; {badge['title']}".lstrip("; ")}


def plain(text, sort=None, **extra) -> dict:
    return {"text": str(text), "sort": "" if sort is None else str(sort), **extra}


def as_table(frame: pd.DataFrame, table_id: str, caption: str = "", sortable: bool = True,
             row_ids: list[str] | None = None, row_cls: list[str] | None = None, index_name: str = "",
             heads: list[dict] | None = None) -> dict:
    """A frame whose values are cells (dicts or plain values) -> the template's table structure;
    ``heads`` replaces the index as row-header cells (e.g. links)."""
    columns = [{"text": index_name}] + [{"text": str(c)} for c in frame.columns]
    rows = []
    for i, (name, values) in enumerate(frame.iterrows()):
        cells = [v if isinstance(v, dict) else plain("–" if v is None or (isinstance(v, float) and math.isnan(v))
                                                     else v, v) for v in values]
        rows.append({"id": row_ids[i] if row_ids else None, "cls": row_cls[i] if row_cls else None,
                     "head": heads[i] if heads else plain(name), "cells": cells})
    return {"id": table_id, "caption": caption, "sortable": sortable, "columns": columns, "rows": rows}


def confusion_tables(counts, labels: list[str], encoder: str) -> tuple[dict, dict]:
    """Counts and row-normalised percentages; rows carry anchors ``cm-<encoder>-<class>``."""
    counts = np.asarray(counts, dtype=int)
    frame = pd.DataFrame(counts, index=labels, columns=labels)
    totals = frame.sum(axis=1)
    normalised = frame.div(totals.where(totals > 0), axis=0)
    ids = [f"cm-{anchor(encoder)}-{anchor(label)}" for label in labels]
    frame["total"] = totals
    count_cells = frame.apply(lambda col: col.map(lambda v: plain(int(v), int(v))))
    norm_cells = normalised.apply(lambda col: col.map(lambda v: plain(pct(v), v)))
    return (as_table(count_cells, f"cmt-{anchor(encoder)}", "counts (rows = true class, columns = predicted)",
                     sortable=False, row_ids=ids, index_name="true \\ predicted"),
            as_table(norm_cells, f"cmnt-{anchor(encoder)}", "row-normalised (% of each true class)", sortable=False,
                     row_ids=[f"n{i}" for i in ids], index_name="true \\ predicted"))


def per_class_table(per_class: dict[str, dict], labels: list[str], superclasses: dict[str, tuple[dict, list]]) -> dict:
    """Rows = classes (then superclass rows), columns = encoders; sensitivity with fold spread.

    ``per_class``: encoder -> the result's per_class; ``superclasses``: name -> ({encoder:
    metric entry}, members)."""
    frame, ids, cls = {}, [], []
    for label in labels:
        row = {}
        for encoder, table in per_class.items():
            stats = table.get(label)
            if stats is None:
                row[encoder] = plain("–")
                continue
            folds = stats.get("sensitivity_folds") or {}
            spread = f" ± {pct(folds['std'])}" if folds.get("values") and len(folds["values"]) > 1 else ""
            row[encoder] = plain(f"{pct(stats['sensitivity'])}{spread}", stats["sensitivity"],
                                 href=f"#cm-{anchor(encoder)}-{anchor(label)}", sub=f"n={stats['support']}",
                                 title=f"precision {pct(stats['precision'])}, F1 {pct(stats['f1'])}, "
                                       f"support {stats['support']}", data={"value": repr(stats["sensitivity"])})
        frame[label] = row
        ids.append(f"class-{anchor(label)}")
        cls.append("")
    for name, (scores, members) in superclasses.items():
        frame[f"{name} (superclass: {' + '.join(members)})"] = {e: score_cell(s) for e, s in scores.items()}
        ids.append(f"super-{anchor(name)}")
        cls.append("superclass")
    table = pd.DataFrame.from_dict(frame, orient="index").reindex(columns=list(per_class))
    return as_table(table.fillna(""), "per-class", "sensitivity (recall) per true class, % (± std over folds); "
                    "click a value for that class's confusion-matrix row", row_ids=ids, row_cls=cls,
                    index_name="class")


def metric_matrix(scores: dict[str, dict[str, dict]], keys: list[str], table_id: str, caption: str,
                  index_name: str = "metric") -> dict:
    """Rows = metric keys, columns = encoders, cells = mean ± std [interval], each in its metric's unit
    (``names.metric_unit``: % for fractions, NLL in nats, the Brier score as stored; the unit is in the row head)."""
    frame = pd.DataFrame({encoder: {k: unit_cell(m.get(k), k) for k in keys} for encoder, m in scores.items()},
                         index=keys)
    heads = [plain(f"{metric_label(k)}, {metric_unit(k)[0]}", k, title=k) for k in keys]  # words; the key on hover
    return as_table(frame, table_id, caption, index_name=index_name, heads=heads)
