"""Template contexts of the three kinds of page: index, one per board (task x dataset x protocol),
one per encoder. Links: index cell -> board row -> class row -> confusion-matrix row."""

from __future__ import annotations

import json

import pandas as pd

from hemabench.leaderboard import figures
from hemabench.leaderboard.calibration import calibration_table
from hemabench.leaderboard.clinical import clinical_scores, model_for
from hemabench.leaderboard.collect import Board, Entry, anchor, detail_variant, slug, task_params
from hemabench.leaderboard.hardcells import hardcells_section
from hemabench.leaderboard.sections import CURVE_VARIANT, attention, crossmag, curves, superclass_rows
from hemabench.leaderboard.shift import shift_section
from hemabench.leaderboard.tables import (
    as_table,
    confusion_tables,
    metric_matrix,
    pct,
    per_class_table,
    plain,
    score_cell,
)


def board_title(board: Board) -> str:
    return f"{board.task} / {board.dataset}"


def board_href(board: Board, prefix: str = "") -> str:
    return f"{prefix}tasks/{board.slug}.html"


def encoder_href(encoder: str, prefix: str = "") -> str:
    return f"{prefix}encoders/{slug(encoder)}.html"


def split_text(split: dict | None) -> str:
    if not split:
        return ""
    return f"{split.get('dataset', '')} {split.get('name')} v{split.get('version')} · {split.get('fingerprint')}"


def provenance_row(entry: Entry) -> dict:
    r, prov = entry.result, entry.result.get("provenance") or {}
    return {"origin": f"{entry.origin}: {entry.path.name}", "hemabench": prov.get("hemabench_version", ""),
            "git commit": prov.get("git_commit") or "", "task version": r.get("task_version"),
            "weights sha256": r["encoder"].get("weights_sha256", ""),
            "split fingerprint": (r.get("split") or {}).get("fingerprint", ""),
            "source split fingerprint": (r.get("source_split") or {}).get("fingerprint", ""),
            "device": prov.get("device", ""), "finished": prov.get("finished", "")}


RANKING_HIDDEN = {"classwise_ece", "nll", "risk_at_80", "classwise_ece_ts", "brier_ts", "nll_ts"}  # under "all metrics"


def _ranking(board: Board, clinical: dict) -> dict:
    variant = board.main_metric.rsplit("/", 1)[0]
    others = sorted({k for e in board.entries.values() for k in e.result["metrics"]
                     if k.startswith(variant + "/") and "/" not in k[len(variant) + 1:]
                     and k != board.main_metric and "/sensitivity_" not in k and "/drop_sensitivity_" not in k
                     and k.rsplit("/", 1)[1] not in RANKING_HIDDEN})
    rows, heads, ids = [], [], []
    for encoder in board.sorted_encoders():
        entry = board.entries[encoder]
        row = {"rank": plain(board.ranks.get(encoder, "–"), board.ranks.get(encoder), cls="rank-cell",
                             data={"rank": str(board.ranks.get(encoder))}),
               board.main_metric: score_cell(entry.main)}
        row.update({k.rsplit("/", 1)[1]: score_cell(entry.result["metrics"].get(k)) for k in others})
        scores = clinical.get(encoder)
        if scores:
            row[f"mean cost ({scores['model']})"] = score_cell(scores["mean_cost"], scale=1, digits=2)
            row[f"{scores['group_kind']} accuracy"] = score_cell(scores["group_accuracy"])
        row["source"] = plain(entry.origin)
        rows.append(row)
        heads.append(plain(encoder, encoder, href=encoder_href(encoder, "../")))
        ids.append(f"enc-{anchor(encoder)}")
    return as_table(pd.DataFrame(rows), "ranking", f"main metric {board.main_metric} of each encoder, % (mean ± std over folds or "
                    "repetitions, 95% interval); rank = 1 + number of encoders significantly better (paired bootstrap); "
                    "mean cost: clinically weighted error per sample, lower is better",
                    row_ids=ids, index_name="encoder", heads=heads)


def _comparisons(board: Board) -> dict | None:
    if not board.comparisons:
        return None
    rows = {f"{c.a} − {c.b}": {"difference": plain(pct(c.diff, 2), c.diff), "95% interval":
                               plain(f"[{pct(c.ci95[0], 2)}, {pct(c.ci95[1], 2)}]"),
                               "paired over": plain(f"{c.n} {c.unit}", c.n),
                               "significant": plain("yes" if c.significant else "no (tied)")}
            for c in board.comparisons}
    return as_table(pd.DataFrame.from_dict(rows, orient="index"), "comparisons",
                    "paired bootstrap of the main-metric difference, percentage points", index_name="pair")


def _variants(board: Board) -> dict | None:
    name = board.main_metric.rsplit("/", 1)[1]
    keys = sorted({k for e in board.entries.values() for k in e.result["metrics"] if k.endswith("/" + name)
                   and not CURVE_VARIANT.match(k.rsplit("/", 1)[0]) and "->" not in k})
    if len(keys) < 2:
        return None
    scores = {e: board.entries[e].result["metrics"] for e in board.sorted_encoders()}
    return metric_matrix(scores, keys, "variants", f"{name} of every variant, %", index_name="variant")


def _cost_model(labels: list[str], models, site, board: Board) -> dict | None:
    model = model_for(labels, models)
    if model is None:
        return None
    figure = site.figure(f"{board.slug}-costs.svg", figures.heatmap, model.matrix(labels), labels, labels,
                         f"cost ({model.name} v{model.version})", "predicted", "true", ".1f", 10)
    groups = {g: ", ".join(m for m in members if m in labels) for g, members in model.groups.items()}
    return {"name": model.name, "version": model.version, "kind": model.group_kind, "description": model.description,
            "groups": {g: m for g, m in groups.items() if m}, "figure": figure}


def board_context(board: Board, site, models) -> dict:
    first = board.first
    meta = first.get("task_metadata") or {}
    labels = list(dict.fromkeys(str(x) for e in board.entries.values() for x in e.result.get("labels", [])))
    clinical = {e: clinical_scores(entry.result, detail_variant(entry.result), models)
                for e, entry in board.entries.items()}
    confusions = []
    for encoder in board.sorted_encoders():
        result = board.entries[encoder].result
        cm = result.get("confusion_matrix") or {}
        if cm.get("counts"):
            counts, normalised = confusion_tables(cm["counts"], list(cm["labels"]), encoder)
            figure = site.figure(f"{board.slug}-cm-{slug(encoder)}.svg", figures.confusion_figure, cm["counts"],
                                 list(cm["labels"]), f"{encoder}: % of each true class")
            confusions.append({"encoder": encoder, "id": f"cm-{anchor(encoder)}", "counts": counts,
                               "normalised": normalised, "figure": figure})
    per_class = {e: board.entries[e].result.get("per_class") or {} for e in board.sorted_encoders()}
    scores = {e: board.entries[e].result["metrics"] for e in board.sorted_encoders()}
    all_keys = sorted({k for s in scores.values() for k in s})
    return {
        "board": board, "title": board_title(board), "meta": meta, "detail_variant": detail_variant(first),
        "params_json": json.dumps(task_params(first), indent=1, sort_keys=True),
        "split": split_text(first.get("split")), "source_split": split_text(first.get("source_split")),
        "ranking": _ranking(board, clinical), "comparisons": _comparisons(board), "variants": _variants(board),
        "cost_model": _cost_model(labels, models, site, board),
        "per_class": per_class_table(per_class, labels, superclass_rows(board)),
        "curves": curves(board, site), "crossmag": crossmag(board, site), "attention": attention(board, site),
        "shift": shift_section(board, site), "hard_cells": hardcells_section(board, site),
        "calibration": calibration_table(board),
        "confusions": confusions,
        "all_metrics": metric_matrix(scores, all_keys, "all-metrics", "every stored metric, %"),
        "sources": as_table(pd.DataFrame({e: provenance_row(board.entries[e]) for e in board.sorted_encoders()}).T,
                               "provenance", "where each result came from", sortable=False, index_name="encoder"),
    }


def index_context(boards: list[Board], encoders: dict[str, dict]) -> dict:
    """Encoders x boards with the main metric; mean significance rank over the boards present."""
    rows, heads = [], []
    columns = [{"text": board_title(b), "href": board_href(b), "sub": f"v{b.version} · params {b.params_digest}",
                "title": f"{b.main_metric}; split {split_text(b.first.get('split'))}"} for b in boards]
    for encoder in sorted(encoders):
        ranks = [b.ranks[encoder] for b in boards if encoder in b.entries]
        row = [plain(f"{sum(ranks) / len(ranks):.2f}", sum(ranks) / len(ranks)) if ranks else plain("–")]
        for b in boards:
            entry = b.entries.get(encoder)
            row.append(score_cell(entry.main, f"{board_href(b)}#enc-{anchor(encoder)}", b.ranks.get(encoder))
                       if entry else plain("–"))
        rows.append(row)
        heads.append(plain(encoder, encoder, href=encoder_href(encoder)))
    table = {"id": "leaderboard", "sortable": True,
             "caption": "main metric per task and dataset, % (mean ± std, 95% interval); the badge is the "
                        "significance rank within that column (equal ranks: not separable)",
             "columns": [{"text": "encoder"}, {"text": "mean rank"}] + columns,
             "rows": [{"id": f"row-{anchor(e)}", "head": h, "cells": r} for e, h, r in zip(sorted(encoders), heads, rows)]}
    board_rows = {board_title(b) + f" (v{b.version}, params {b.params_digest})": {
        "main metric": b.main_metric, "task version": b.version, "params": b.params_digest,
        "split": split_text(b.first.get("split")), "source split": split_text(b.first.get("source_split")),
        "encoders": len(b.entries)} for b in boards}
    return {"leaderboard": table, "boards": as_table(pd.DataFrame.from_dict(board_rows, orient="index"), "boards",
                                               "what each column is: results are ranked together only within one "
                                               "row of this table", sortable=False, index_name="board")}


def encoder_context(encoder: str, boards: list[Board]) -> dict:
    entries = [(b, b.entries[encoder]) for b in boards if encoder in b.entries]
    meta = next((e.meta for _, e in entries if e.meta), {})
    spec = meta.get("spec") or entries[0][1].result["encoder"].get("spec") or {}
    weights = sorted({str(e.result["encoder"].get("weights_sha256", "")) for _, e in entries})
    rows = {}
    for b, e in entries:
        rows[board_title(b) + f" (v{b.version}, params {b.params_digest})"] = {
            "main metric": plain(b.main_metric), "score": score_cell(e.main, board_href(b, "../") + f"#enc-{anchor(encoder)}"),
            "rank": plain(f"{b.ranks.get(encoder)} of {len(b.entries)}", b.ranks.get(encoder)),
            "split fingerprint": plain((e.result.get("split") or {}).get("fingerprint", "")),
            "hemabench": plain((e.result.get("provenance") or {}).get("hemabench_version", ""))}
    spec_rows = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in spec.items()}
    return {"encoder": encoder, "spec": spec_rows, "submission": meta.get("submission") or {}, "weights": weights,
            "key_facts": {k: spec.get(k, "") for k in ("license", "params_m", "training_data", "citation")},
            "results": as_table(pd.DataFrame.from_dict(rows, orient="index"), "results", "every result of this encoder",
                                index_name="task / dataset")}
