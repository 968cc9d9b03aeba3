"""What issue 15 adds to the board and encoder pages: encoder cost, paper rows, reproduced-vs-reported.

Kept apart from ``pages`` so the ranking itself stays as it was: these functions only add
columns and rows to its table, and sections after it. Paper rows get no rank, sit after
every run (the "paper" tier) and take no part in the pairwise comparisons.
"""

from __future__ import annotations

import json
import statistics

import pandas as pd

from hemabench.files.canonical import same_json
from hemabench.leaderboard import figures
from hemabench.leaderboard.collect import Board, anchor, board_title, encoder_href
from hemabench.leaderboard.names import metric_label
from hemabench.leaderboard.reported import (
    FLAG,
    TRAINED_MARK,
    Pair,
    PaperBoard,
    by_encoder,
    comparable,
    encoder_head,
    for_board,
    mark_trained,
    reported_cell,
    trained_datasets,
)
from hemabench.leaderboard.tables import as_table, metric_cell, pct, plain
from hemabench.published.protocol import hemabench_classes
from hemabench.published.values import EXTERNAL, Reported
from hemabench.results import Result
from hemabench.results.metrics import known_metric_names

COST_COLUMNS = ("GFLOPs / image", "forward images/s", "extraction images/s")
DELTA = "reproduced − reported"


def _changed(defaults: dict, params: dict) -> dict:
    """The parameters that differ from the defaults; in a mapping parameter (e.g. ``calibration``)
    only its changed keys, as ``calibration.n``."""
    out = {}
    for k, v in params.items():
        default = defaults.get(k)
        if isinstance(v, dict) and isinstance(default, dict) and set(v) == set(default):
            out.update({f"{k}.{sub}": v[sub] for sub in v if not same_json(default[sub], v[sub])})
        elif not same_json(default, v):
            out[k] = v
    return out


def protocol_words(task: str, params: dict, params_digest: str) -> tuple[str, str]:
    """("full protocol" | "demo settings: k v, ..." , tooltip with the hash) for a board's parameters."""
    from hemabench.tasks import TASKS

    try:
        defaults = TASKS.get(task).params
    except Exception:  # an unregistered task: only the hash can be shown
        return f"parameters {params_digest}", f"task parameters {params_digest}"
    changed = _changed(defaults, params)
    text = "full protocol" if not changed else "demo settings: " + ", ".join(
        f"{k.replace('_', ' ')} {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in sorted(changed.items()))
    return text, f"task parameters {params_digest}" + (f" (registered defaults changed: {sorted(changed)})" if changed else "")


def cost_cells(costs: list[dict]) -> dict[str, dict]:
    """The cost columns (``COST_COLUMNS``) of one result's ``encoder_cost`` (a list of one: a board row)
    or of an encoder's results on several boards (the index): the GFLOPs, the median bare-forward speed
    on the first device, and the extraction speed (one result only: it depends on the dataset)."""
    if not costs:
        return {c: plain("–") for c in COST_COLUMNS}
    gflops = next((c.get("gflops_per_image") for c in costs if c.get("gflops_per_image") is not None), None)
    devices = sorted({c["device"] for c in costs})
    speed = statistics.median(c["forward_images_per_s"] for c in costs if c["device"] == devices[0])
    one = costs[0] if len(costs) == 1 else {}
    extraction = one.get("extraction_images_per_s")
    if one:
        sub, title = devices[0], f"bare forward, batch {one.get('forward_batch_size')}, on {devices[0]}"
    else:
        sub = devices[0] if len(devices) == 1 else f"{devices[0]}; {len(devices)} devices, see the encoder page"
        title = f"bare forward, images/s on {devices[0]}; speeds from different devices are not comparable"
    return {
        COST_COLUMNS[0]: plain("–" if gflops is None else f"{gflops:.2f}", gflops, title=costs[0].get("flops_note", "")),
        COST_COLUMNS[1]: plain(f"{speed:.1f}", speed, sub=sub, title=title),
        COST_COLUMNS[2]: plain("–" if extraction is None else f"{extraction:.1f}", extraction,
                               sub=one.get("extraction_device") or None,
                               title="decode, resize and forward of this dataset's images"),
    }


def _own_cost(result: Result) -> list[dict]:
    cost = result.encoder_cost
    return [cost] if isinstance(cost, dict) else []


def _column_metric(text: str, board_main: str) -> str | None:
    """The metric key a ranking column shows (the main metric, or a sibling of its variant)."""
    variant = board_main.rsplit("/", 1)[0]
    if text == board_main:
        return text
    return f"{variant}/{text}" if text in known_metric_names() else None


def extend_ranking(table: dict, board: Board, values: list[Reported], pairs: list[Pair]) -> dict:
    """Cost and reproduced-minus-reported columns on the run rows; paper rows below them, unranked."""
    main_pairs = {p.encoder: p for p in pairs if p.metric == board.main_metric}
    for row, encoder in zip(table["rows"], board.sorted_encoders()):
        cells = cost_cells(_own_cost(board.entries[encoder].result))
        pair = main_pairs.get(encoder)
        row["cells"] += [cells[c] for c in COST_COLUMNS] + [pair.cell() if pair else plain("–")]
        row.setdefault("data", {})["tier"] = "run"
    table["columns"] += [{"text": c} for c in COST_COLUMNS] + [
        {"text": DELTA, "title": f"run minus the published value of {board.main_metric}, percentage points, with the "
                                 "run's 95% interval moved by the published value, only where the value's protocol "
                                 f"matches this board; ≠ = {FLAG} (the run's 95% interval and the paper's ± sd)"}]
    texts = [c["text"] for c in table["columns"][1:]]
    for (encoder, source), metrics in by_encoder(comparable(board, values)[0]).items():
        first, trained = next(iter(metrics.values())), trained_datasets(encoder)
        cells = []
        for text in texts:
            metric = _column_metric(text, board.main_metric)
            if text == "rank":
                cells.append(plain("paper", "", cls="rank-cell paper", title="published: never ranked"))
            elif text == "source":
                cells.append(plain(source, source, title=f"{first.citation}. Protocol: {first.note} Still different: "
                                                         + (", ".join(first.protocol.remaining()) or "nothing")))
            else:
                cells.append(mark_trained(reported_cell(metrics.get(metric), source=False), board.dataset, trained)
                             if metric else plain("–"))
        href = None if first.external else encoder_href(encoder, "../")
        table["rows"].append({"id": f"paper-{anchor(encoder)}-{anchor(source)}", "cls": "tier-paper",
                              "head": encoder_head(encoder, href, _description(first)), "cells": cells,
                              "data": {"tier": "paper"}})
    return table


def _description(r: Reported) -> str:
    """The hover text of a paper row's encoder: its description, and the paper's weights where they differ."""
    wanted = r.protocol.weights.get(r.encoder)
    other = f"published with other weights than hemabench's {r.encoder}: {wanted}" if wanted else ""
    return "; ".join(t for t in (r.encoder_description, other) if t)


def protocol_cell(r: Reported, reasons: dict[str, list[str]] | None) -> dict:
    """Whether a paper table's protocol matches this board (and what still differs), or why not."""
    if reasons is None:
        ours = hemabench_classes(r.task, r.dataset) if r.protocol.classes else None
        other = f"other class set ({len(r.protocol.classes)} classes in the paper, {len(ours)} scored by hemabench): " \
                "never paired; " if ours is not None and sorted(ours) != sorted(r.protocol.classes) else ""
        text = other + "still different: " + (", ".join(r.protocol.remaining()) or "nothing")
        return plain(text, text, title=r.note, cls="prose")
    found = reasons.get(r.source)
    text = ("not comparable here: " + "; ".join(found)) if found else \
        "matches this board; still different: " + (", ".join(r.protocol.remaining()) or "nothing")
    return plain(text, text, title=r.note, cls="prose")


def published_table(task: str, dataset: str, values: list[Reported], board: Board | None = None) -> dict | None:
    """Every published number on this task and dataset: one row per encoder and paper table, one column
    per metric; transposed (metrics as rows) when there are many more metrics than rows, e.g. per-class
    sensitivities. The "protocol" column (row) says, for a ``board``, whether each table's protocol matches it."""
    mine = for_board(task, dataset, values)
    if not mine:
        return None
    reasons = comparable(board, values)[1] if board is not None else None
    metrics = list(dict.fromkeys(r.metric for r in mine))
    rows = by_encoder(mine)
    trained = {e: trained_datasets(e) for e, _ in rows}
    value = lambda e, r: mark_trained(reported_cell(r, source=False), dataset, trained[e])  # noqa: E731
    caption = ("published numbers, % (± sd where the paper prints one); hover a value for the paper's protocol and "
               "how it differs from hemabench's; \"protocol\" says whether the paper's protocol matches this board "
               "(only then is a value paired with a run). Never ranked with runs."
               + (f" {TRAINED_MARK}." if any(dataset in t for t in trained.values()) else ""))
    if len(metrics) > 10 and len(metrics) > 2 * len(rows):
        frame = pd.DataFrame({f"{e.removeprefix(EXTERNAL)} ({source})":
                              {"protocol": protocol_cell(next(iter(cells.values())), reasons),
                               **{m: value(e, cells.get(m)) for m in metrics}}
                              for (e, source), cells in rows.items()}, index=["protocol"] + metrics)
        return as_table(frame, "published", caption, index_name="metric",
                        heads=[plain("protocol")] + [metric_cell(m) for m in metrics])
    frame = pd.DataFrame([{m: value(e, cells.get(m)) for m in metrics} for (e, _), cells in rows.items()],
                         columns=metrics)
    heads = [encoder_head(e, None if e.startswith(EXTERNAL) else encoder_href(e, "../"),
                          _description(next(iter(cells.values())))) for (e, _), cells in rows.items()]
    frame.insert(0, "protocol", [protocol_cell(next(iter(cells.values())), reasons) for cells in rows.values()])
    frame.insert(0, "paper, table", [plain(source, source, title=next(iter(cells.values())).note)
                                     for (_, source), cells in rows.items()])
    table = as_table(frame, "published", caption, index_name="encoder", heads=heads, row_cls=["tier-paper"] * len(heads))
    for column in table["columns"]:  # metric keys in words, the key on hover
        if column["text"] in metrics:
            column.update(metric_cell(column["text"]))
    return table


def pairs_table(pairs: list[Pair], table_id: str = "pairs", boards: list[str] | None = None) -> dict | None:
    """Reproduced vs reported: run, published value, difference and the run's interval moved by it."""
    if not pairs:
        return None
    rows = []
    for i, p in enumerate(pairs):
        ci = p.run.get("ci95") or [None, None]
        row = {"board": plain(boards[i], boards[i])} if boards else {}
        row.update({"metric": metric_cell(p.metric),
                    "run": plain(f"{pct(p.run['mean'])}", p.run["mean"], sub=f"[{pct(ci[0])}, {pct(ci[1])}]"),
                    "reported": reported_cell(p.reported), DELTA: p.cell(),
                    "flag": plain(FLAG if p.flagged else "no", p.flagged,
                                  title="run CI excludes the paper's value: " + str(p.outside_run).lower()
                                        + "; paper's ± sd excludes the run's mean: "
                                        + ("no sd printed" if p.reported.sd is None else str(p.outside_paper).lower())),
                    "still different": plain(", ".join(p.remaining) or "–")})
        rows.append(row)
    heads = [plain(p.encoder, p.encoder) for p in pairs]
    return as_table(pd.DataFrame(rows), table_id, "a hemabench run and a published value of the same encoder, task, "
                    "dataset and metric, on a board whose protocol (task version, parameters, split, class set, "
                    "encoder weights) matches the paper's; difference in percentage points with the run's 95% "
                    f"interval minus the published value; flag: {FLAG} (the run's 95% interval excludes the "
                    "paper's value and the paper's ± sd, where printed, excludes the run's mean); \"still "
                    "different\": what the protocol match cannot remove", index_name="encoder", heads=heads,
                    row_cls=["flagged" if p.flagged else "" for p in pairs])


def pareto(board: Board, site) -> str | None:
    rows = [{"encoder": e, "score": board.entries[e].main.mean,
             "images_per_s": board.entries[e].result.encoder_cost.get("forward_images_per_s"),
             "gflops": board.entries[e].result.encoder_cost.get("gflops_per_image"),
             "device": board.entries[e].result.encoder_cost.get("device")}
            for e in board.sorted_encoders() if isinstance(board.entries[e].result.encoder_cost, dict)]
    if not rows:
        return None
    frame = pd.DataFrame(rows).astype({"images_per_s": float, "gflops": float})
    return site.figure(f"{board.slug}-pareto.svg", figures.pareto_figure, frame, board.dataset, board.main_metric)


def encoder_costs(encoder: str, boards: list[Board], title) -> dict | None:
    """The encoder page's cost table: one row per result (devices and datasets differ)."""
    rows, names = [], []
    for b in boards:
        cost = b.entries[encoder].result.encoder_cost
        if not isinstance(cost, dict):
            continue
        names.append(title(b))
        rows.append({"parameters": plain(f"{cost['parameters']:,}", cost["parameters"]),
                     "embedding": plain(cost["embedding_dim"], cost["embedding_dim"]),
                     "input": plain(f"{cost['input_size']} px", cost["input_size"]),
                     **cost_cells([cost]),
                     "peak memory (MB)": plain(f"{cost['peak_memory_mb']:.0f}", cost["peak_memory_mb"],
                                               title=cost.get("peak_memory_kind", "")),
                     "device": plain(cost["device"])})
    if not rows:
        return None
    return as_table(pd.DataFrame(rows, index=names), "cost", "measured cost of this encoder in each result; images/s "
                    "depend on the device named: compare speeds only on the same device", index_name="result")


def paper_board_context(board: PaperBoard, values: list[Reported]) -> dict:
    """A board only papers report so far: what the task is, and the published rows."""
    from hemabench.tasks import TASKS

    task = TASKS.get(board.task)
    return {"board": board, "title": board_title(board), "task": task, "main_words": metric_label(board.main_metric),
            "published": published_table(board.task, board.dataset, values)}
