"""The index page: encoders x boards, columns grouped by task family, runs first, then paper rows.

Runs carry their significance rank within each column; paper rows (published numbers)
carry a badge and are never ranked. Rows carry data attributes the filter script reads
(encoder family, parameters, the datasets the encoder was trained on); column headers say
in words which protocol they hold ("full protocol", "demo settings: repetitions 10") with
the parameter hash in the tooltip.
"""

from __future__ import annotations

import pandas as pd

from hemabench.leaderboard.collect import Board, anchor, board_href, board_title, encoder_href
from hemabench.leaderboard.context import cost_cells, protocol_words
from hemabench.leaderboard.names import metric_label
from hemabench.leaderboard.pages import dataset_title, split_cell, split_text
from hemabench.leaderboard.reported import (
    PaperBoard,
    comparable,
    encoder_head,
    mark_trained,
    reported_cell,
    task_family,
    trained_on,
)
from hemabench.leaderboard.summary import column_key, flagged, is_real, summary_table
from hemabench.leaderboard.tables import as_table, metric_cell, plain, score_cell, with_badge
from hemabench.published.values import EXTERNAL, Reported


def encoder_facts(name: str, entries: list) -> dict:
    """Family, parameters (M), trained-on datasets and measured cost of one encoder for the index."""
    from hemabench.encoders import ENCODERS

    try:
        spec = ENCODERS.get(name)
        facts = {"family": spec.family, "params_m": float(spec.params_m), "trained": trained_on(spec.training_data)}
    except Exception:  # a submitted encoder that is not in this registry: what its results say
        spec = entries[0].result.encoder_spec if entries else {}
        facts = {"family": str(spec.get("family", "")), "params_m": spec.get("params_m"),
                 "trained": trained_on(str(spec.get("training_data", "")))}
    costs = [e.result.encoder_cost for e in entries if isinstance(e.result.encoder_cost, dict)]
    facts["costs"] = costs
    return facts


def _column_heads(columns: list) -> tuple[list[dict], list[dict]]:
    """Header cells and family group cells of board columns (already in family order)."""
    heads, groups = [], []
    for kind, b in columns:
        if kind == "run":
            words, title = protocol_words(b.task, b.first.params, b.params_digest)
            data = "real data" if is_real(b.dataset) else "synthetic twin"
            heads.append({"text": board_title(b), "href": board_href(b), "sub": f"v{b.version} · {data} · {words}",
                          "title": f"{dataset_title(b.dataset)}; {metric_label(b.main_metric)}; {title}; "
                                   f"split {split_text(b.first.split)}"})
        else:
            heads.append({"text": board_title(b), "href": board_href(b), "sub": f"v{b.version} · papers only · {metric_label(b.main_metric)}",
                          "title": f"{b.main_metric}; no hemabench run yet: published numbers only"})
        family = task_family(b.task)
        if groups and groups[-1]["text"] == family:
            groups[-1]["span"] += 1
        else:
            groups.append({"text": family, "span": 1})
    return heads, groups


def _paper_rows(values: list[Reported], columns: list, allowed: dict) -> list[dict]:
    """Rows of published numbers over ``columns``; rows with no value in any of them are left out."""
    rows = []
    for encoder in sorted({r.encoder for r in values}):
        mine = [r for r in values if r.encoder == encoder]
        facts = encoder_facts(encoder, []) if not encoder.startswith(EXTERNAL) else \
            {"family": "external", "params_m": None, "trained": [], "costs": []}
        cells = [plain(facts["family"]), _params_cell(facts["params_m"]), plain("–"), plain("–"), plain("not ranked")]
        hits = [next((r for r in mine if (r.task, r.dataset, r.metric) == (b.task, b.dataset, b.main_metric)
                      and (id(b) not in allowed or id(r) in allowed[id(b)])), None) for _, b in columns]
        if not any(hits):
            continue
        cells += [mark_trained(reported_cell(hit), b.dataset, facts["trained"]) for hit, (_, b) in zip(hits, columns)]
        href = None if encoder.startswith(EXTERNAL) else encoder_href(encoder)
        rows.append(_row(f"paper-{anchor(encoder)}", encoder_head(encoder, href, mine[0].encoder_description),
                         cells, facts, "paper"))
    return rows


def index_context(boards: list[Board], paper_boards: list[PaperBoard], values: list[Reported], downloads) -> dict:
    order = lambda kb: column_key(kb[1].task, kb[1].dataset, kb[1].version)  # noqa: E731
    run_columns = sorted([("run", b) for b in boards], key=order)
    paper_columns = sorted([("paper", b) for b in paper_boards], key=order)
    heads, groups = _column_heads(run_columns)
    fixed = [{"text": "encoder"}, {"text": "family"}, {"text": "params (M)"}, {"text": "GFLOPs / image"},
             {"text": "forward images/s", "title": "bare forward pass on the run's device (named below each value)"},
             {"text": "mean rank"}]
    groups = [{"text": "", "span": len(fixed)}] + groups
    rows = []
    run_encoders = sorted({e for b in boards for e in b.entries})
    for encoder in run_encoders:
        facts = encoder_facts(encoder, [b.entries[encoder] for b in boards if encoder in b.entries])
        ranks = [b.ranks[encoder] for b in boards if encoder in b.entries and encoder in b.ranks]
        cells = [plain(facts["family"]), _params_cell(facts["params_m"]), *list(cost_cells(facts["costs"]).values())[:2],
                 plain(f"{sum(ranks) / len(ranks):.2f}", sum(ranks) / len(ranks)) if ranks else plain("–")]
        for _, b in run_columns:
            entry = b.entries.get(encoder)
            cell = (with_badge(flagged(score_cell(entry.main, f"{board_href(b)}#enc-{anchor(encoder)}", b.ranks.get(encoder)),
                                       entry.result), entry.trust)
                    if entry else plain("–"))
            cells.append(mark_trained(cell, b.dataset, facts["trained"]))
        rows.append(_row(f"row-{anchor(encoder)}", plain(encoder, encoder, href=encoder_href(encoder)), cells,
                         facts, "run"))
    # a run board's column shows a published value only where the value's protocol matches that board
    allowed = {id(b): {id(r) for r in comparable(b, values)[0]} for _, b in run_columns}
    rows += _paper_rows(values, run_columns, allowed)
    table = {"id": "leaderboard", "sortable": True, "groups": groups, "rows": rows, "caption": "",
             "note": "main metric per task and dataset, % (notation above); the badge is the significance "
                        "rank within that column (equal ranks: not separable). Rows marked paper are published numbers "
                        "(hover for the table and protocol differences): never ranked. † = the encoder was trained on "
                        "(part of) that dataset; ⚠ = at or below chance, or predictions collapsed onto one class.",
             "columns": fixed + heads}
    table["csv"] = downloads.table(table)
    paper_heads, paper_groups = _column_heads(paper_columns)
    papers = {"id": "papers-only", "sortable": True, "groups": [{"text": "", "span": len(fixed)}] + paper_groups,
              "rows": _paper_rows(values, paper_columns, {}), "caption": "",
              "columns": fixed + paper_heads}
    papers["csv"] = downloads.table(papers)
    board_rows = {}
    for b in boards:
        words, title = protocol_words(b.task, b.first.params, b.params_digest)
        board_rows[f"{board_title(b)} (v{b.version}, {words})"] = {
            "dataset": dataset_title(b.dataset), "main metric": metric_cell(b.main_metric), "task version": b.version,
            "parameters digest": plain(b.params_digest, b.params_digest, title=title),
            "split": split_cell(b.first.split), "source split": split_cell(b.first.source_split or None),
            "encoders": len(b.entries)}
    for b in paper_boards:
        board_rows[f"{board_title(b)} (v{b.version}, papers only)"] = {
            "dataset": dataset_title(b.dataset), "main metric": metric_cell(b.main_metric), "task version": b.version,
            "parameters digest": "", "split": "", "source split": "",
            "encoders": f"{len({r.encoder for r in b.values})} (papers)"}
    board_table = as_table(pd.DataFrame.from_dict(board_rows, orient="index"), "boards",
                           "what each column is: results are ranked together only within one row of this table",
                           sortable=False, index_name="board")
    board_table["csv"] = downloads.table(board_table)
    families = sorted({r["data"]["family"] for r in rows if r["data"]["family"]})
    datasets = sorted({b.dataset for _, b in run_columns + paper_columns})
    return {"leaderboard": table, "papers_only": papers, "boards": board_table, "families": families,
            "datasets": datasets, **dict(zip(("summary", "summary_twins"), summary_table(boards)))}


def _params_cell(params_m) -> dict:
    if params_m is None:
        return plain("–")
    return plain(f"{float(params_m):.1f}", float(params_m))


def _row(row_id: str, head: dict, cells: list[dict], facts: dict, tier: str) -> dict:
    params = facts.get("params_m")
    return {"id": row_id, "head": head, "cells": cells, "cls": f"tier-{tier}",
            "data": {"tier": tier, "family": facts.get("family") or "",
                     "params": "" if params is None else repr(float(params)),
                     "trained": " ".join(facts.get("trained") or [])}}
