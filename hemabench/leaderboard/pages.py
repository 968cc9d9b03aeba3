"""Template contexts of the three kinds of page: index, one per board (task x dataset x protocol),
one per encoder. Links: index cell -> board row -> class row -> confusion-matrix row."""

from __future__ import annotations

import json

import pandas as pd

from hemabench.leaderboard import figures
from hemabench.leaderboard.calibration import calibration_table, separation_note
from hemabench.leaderboard.clinical import clinical_scores, model_for
from hemabench.leaderboard.collect import Board, Entry, anchor, board_href, board_title, encoder_href, slug
from hemabench.leaderboard.context import (
    encoder_costs,
    extend_ranking,
    pairs_table,
    pareto,
    protocol_words,
    published_table,
)
from hemabench.leaderboard.hardcells import hardcells_section
from hemabench.leaderboard.names import metric_label, metric_unit, natural_key
from hemabench.leaderboard.reported import Pair, pairs, reported_cell
from hemabench.leaderboard.robustness import robustness_section
from hemabench.leaderboard.sections import CURVE_VARIANT, attention, crossmag, curves, superclass_rows
from hemabench.leaderboard.shift import index_section, shift_section
from hemabench.leaderboard.summary import chance, flagged, is_real
from hemabench.leaderboard.tables import (
    as_table,
    confusion_tables,
    hash_cell,
    metric_cell,
    metric_matrix,
    pct,
    per_class_table,
    plain,
    score_cell,
    short_hash,
    trust_cell,
    unit_cell,
)
from hemabench.published.values import Reported
from hemabench.submissions.trust import unranked_reason


def dataset_title(dataset: str) -> str:
    """What the board's data is, from the registered dataset spec (a bundled sample says it is one)."""
    from hemabench.datasets import DATASETS

    return DATASETS.get(dataset).title if dataset in DATASETS else ""


def class_legend(dataset: str, labels: list[str]) -> dict[str, str]:
    """code -> words for the board's classes, from the dataset spec (codes it does not describe are left out)."""
    from hemabench.datasets import DATASETS

    described = DATASETS.get(dataset).classes if dataset in DATASETS else {}
    return {code: described[code] for code in labels if described.get(code) and described[code] != code}


def split_text(split: dict | None) -> str:
    """The split in words with its fingerprint cut short (``split_cell``: the full one on hover)."""
    if not split:
        return ""
    return (f"{split.get('dataset', '')} {split.get('name')} v{split.get('version')} · "
            f"fingerprint {short_hash(split.get('fingerprint'))}")


def split_cell(split: dict | None) -> dict:
    return plain(split_text(split) or "–", (split or {}).get("fingerprint"),
                 title=f"split fingerprint {split.get('fingerprint')}" if split else None)


def provenance_row(entry: Entry) -> dict:
    r, prov = entry.result, entry.result.provenance
    return {"origin": plain(f"{entry.origin}: {entry.path.name}"), "hemabench": plain(prov.get("hemabench_version", "")),
            "git commit": hash_cell(prov.get("git_commit")), "task version": plain(r.task_version, r.task_version),
            "weights sha256": hash_cell(r.weights_sha256),
            "split fingerprint": hash_cell(r.split.get("fingerprint")),
            "source split fingerprint": hash_cell(r.source_split.get("fingerprint")),
            "device": plain(prov.get("device", "")), "finished": plain(prov.get("finished", ""))}


RANKING_HIDDEN = {"classwise_ece", "nll", "risk_at_80", "classwise_ece_ts", "brier_ts", "nll_ts", "ece_debiased",
                  "ece_debiased_ts"}  # under "all metrics"


def _ranking(board: Board, clinical: dict) -> dict:
    variant = board.main_metric.rsplit("/", 1)[0]
    others = sorted({k for e in board.entries.values() for k in e.result.metrics
                     if k.startswith(variant + "/") and "/" not in k[len(variant) + 1:]
                     and k != board.main_metric and "/sensitivity_" not in k and "/drop_sensitivity_" not in k
                     and k.rsplit("/", 1)[1] not in RANKING_HIDDEN})
    rows, heads, ids = [], [], []
    for encoder in board.sorted_encoders():
        entry = board.entries[encoder]
        rank = board.ranks.get(encoder)
        row = {"rank": plain(rank if encoder in board.ranks else unranked_reason(entry.result), rank,
                             cls="rank-cell", data={"rank": str(rank)}),
               board.main_metric: flagged(score_cell(entry.main), entry.result)}
        row.update({k.rsplit("/", 1)[1]: unit_cell(entry.result.metrics.get(k), k) for k in others})
        scores = clinical.get(encoder)
        if scores:
            row[f"mean cost ({scores['model']})"] = score_cell(scores["mean_cost"], scale=1, digits=2)
            row[f"{scores['group_kind']} accuracy"] = score_cell(scores["group_accuracy"])
        row["source"] = plain(entry.origin)
        row["trust"] = trust_cell(entry.trust)
        rows.append(row)
        heads.append(plain(encoder, encoder, href=encoder_href(encoder, "../")))
        ids.append(f"enc-{anchor(encoder)}")
    level = chance(board.first)
    at_chance = f"; chance = {pct(level)} (1 / {len(board.first.labels)} classes), ⚠ = at or below it or collapsed onto " \
                "one class" if level is not None else ""
    table = as_table(pd.DataFrame(rows), "ranking", f"main metric ({metric_label(board.main_metric)}) of each encoder, % (mean ± std over folds or "
                    f"repetitions, 95% interval{at_chance}); rank = 1 + number of encoders significantly better (paired bootstrap); "
                    "mean cost: clinically weighted error per sample, lower is better",
                    row_ids=ids, index_name="encoder", heads=heads,
                    row_cls=[board.entries[e].trust[0] for e in board.sorted_encoders()])
    for column in table["columns"]:  # metric keys keep their text (paper rows match on it), words below
        if column["text"] == board.main_metric or column["text"] in {k.rsplit("/", 1)[1] for k in others}:
            unit = metric_unit(column["text"])[0]
            column["sub"] = metric_label(column["text"]) + ("" if unit == "%" else f", {unit}")
    return table


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
    keys = sorted({k for e in board.entries.values() for k in e.result.metrics if k.endswith("/" + name)
                   and not CURVE_VARIANT.match(k.rsplit("/", 1)[0]) and "->" not in k}, key=natural_key)
    if len(keys) < 2:
        return None
    scores = {e: board.entries[e].result.metrics for e in board.sorted_encoders()}
    return metric_matrix(scores, keys, "variants", f"{name} of every variant, %", index_name="variant")


def _cost_model(labels: list[str], models, site, board: Board) -> dict | None:
    model = model_for(labels, models)
    if model is None:
        return None
    figure = site.figure(f"{board.slug}-costs.svg", figures.heatmap, model.matrix(labels), labels, labels,
                         f"cost ({model.name} v{model.version})", "predicted", "true", ".1f", None)
    groups = {g: ", ".join(m for m in members if m in labels) for g, members in model.groups.items()}
    return {"name": model.name, "version": model.version, "kind": model.group_kind, "description": model.description,
            "groups": {g: m for g, m in groups.items() if m}, "figure": figure}


def board_context(board: Board, site, models, values: list[Reported] = (), paired: list[Pair] | None = None) -> dict:
    """``paired``: ``pairs(board, values)`` when the caller has it already."""
    first = board.first
    paired = pairs(board, list(values)) if paired is None else paired
    meta = first.metadata
    labels = list(dict.fromkeys(x for e in board.entries.values() for x in e.result.labels))
    clinical = {e: clinical_scores(entry.result, entry.result.detail_variant, models)
                for e, entry in board.entries.items()}
    confusions = []
    for encoder in board.sorted_encoders():
        result = board.entries[encoder].result
        cm = result.confusion_matrix
        if cm.get("counts"):
            counts, normalised = confusion_tables(cm["counts"], list(cm["labels"]), encoder)
            figure = site.figure(f"{board.slug}-cm-{slug(encoder)}.svg", figures.confusion_figure, cm["counts"],
                                 list(cm["labels"]), f"{encoder}: % of each true class")
            confusions.append({"encoder": encoder, "id": f"cm-{anchor(encoder)}", "counts": counts,
                               "normalised": normalised, "figure": figure})
    per_class = {e: board.entries[e].result.per_class for e in board.sorted_encoders()}
    scores = {e: board.entries[e].result.metrics for e in board.sorted_encoders()}
    all_keys = sorted({k for s in scores.values() for k in s}, key=natural_key)
    return {
        "board": board, "title": board_title(board), "dataset_title": dataset_title(board.dataset), "meta": meta,
        "real": is_real(board.dataset), "chance": chance(first), "class_legend": class_legend(board.dataset, labels), "main_words": metric_label(board.main_metric),
        "detail_variant": first.detail_variant,
        "params_json": json.dumps(first.params, indent=1, sort_keys=True),
        "protocol_words": protocol_words(board.task, first.params, board.params_digest),
        "split": split_cell(first.split), "source_split": split_cell(first.source_split) if first.source_split else None,
        "ranking": extend_ranking(_ranking(board, clinical), board, list(values), paired),
        "published": published_table(board.task, board.dataset, list(values), board), "pairs": pairs_table(paired),
        "pareto": pareto(board, site), "comparisons": _comparisons(board), "variants": _variants(board),
        "cost_model": _cost_model(labels, models, site, board),
        "per_class": per_class_table(per_class, labels, superclass_rows(board)),
        "curves": curves(board, site), "crossmag": crossmag(board, site), "attention": attention(board, site),
        "shift": shift_section(board, site), "shift_index": index_section(board), "hard_cells": hardcells_section(board, site),
        "robustness": robustness_section(board, site),
        "calibration": calibration_table(board), "calibration_note": separation_note(board),
        "confusions": confusions,
        "all_metrics": metric_matrix(scores, all_keys, "all-metrics", "every stored metric, in the unit its name gives "
                                    "(% for fractions; NLL in nats; Brier score 0 to 2, as stored)"),
        "sources": as_table(pd.DataFrame({e: provenance_row(board.entries[e]) for e in board.sorted_encoders()}).T,
                               "provenance", "where each result came from", sortable=False, index_name="encoder"),
    }


def encoder_context(encoder: str, boards: list[Board], values: list[Reported] = (),
                    board_pairs: dict[tuple, list[Pair]] | None = None) -> dict:
    """``board_pairs``: board key -> ``pairs(board, values)`` when the caller has them already."""
    entries = [(b, b.entries[encoder]) for b in boards if encoder in b.entries]
    board_pairs = board_pairs or {}
    paired = [(b, p) for b in boards for p in (board_pairs[b.key] if b.key in board_pairs else pairs(b, list(values)))
              if p.encoder == encoder]
    meta = next((e.meta for _, e in entries if e.meta), {})
    spec = meta.get("spec") or (entries[0][1].result.encoder_spec if entries else _registered(encoder)) or {}
    weights = sorted({str(e.result.weights_sha256 or "") for _, e in entries})
    rows = {}
    for b, e in entries:
        rows[board_title(b) + f" (v{b.version}, {protocol_words(b.task, b.first.params, b.params_digest)[0]})"] = {
            "main metric": metric_cell(b.main_metric), "score": score_cell(e.main, board_href(b, "../") + f"#enc-{anchor(encoder)}",
                                                                     note=e.result.max_iter_note),
            "rank": plain(f"{b.ranks.get(encoder)} of {len(b.entries)}", b.ranks.get(encoder)),
            "split fingerprint": hash_cell(e.result.split.get("fingerprint")),
            "hemabench": plain(e.result.provenance.get("hemabench_version", ""))}
    spec_rows = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in spec.items()}
    return {"encoder": encoder, "spec": spec_rows, "submission": meta.get("submission") or {}, "weights": weights,
            "key_facts": {k: spec.get(k, "") for k in ("license", "params_m", "training_data", "citation")},
            "results": as_table(pd.DataFrame.from_dict(rows, orient="index"), "results", "every result of this encoder",
                                index_name="task / dataset") if rows else None,
            "cost": encoder_costs(encoder, [b for b, _ in entries], board_title),
            "pairs": pairs_table([p for _, p in paired], "pairs", [board_title(b) for b, _ in paired]),
            "published": _own_published(encoder, values)}


def _registered(encoder: str) -> dict:
    """The registry's spec of an encoder with published numbers but no run yet."""
    from hemabench.encoders import ENCODERS

    try:
        spec = ENCODERS.get(encoder)
    except Exception:  # noqa: BLE001 - not registered here: the page shows no spec
        return {}
    return {k: v for k, v in vars(spec).items() if k in ("name", "family", "arch", "embed_dim", "input_size",
                                                          "params_m", "license", "citation", "training_data")}


def _own_published(encoder: str, values) -> dict | None:
    """The encoder's published numbers on every task and dataset (a registered encoder only)."""
    mine = [r for r in values if r.encoder == encoder]
    if not mine:
        return None
    frame = pd.DataFrame([{"task": plain(r.task), "dataset": plain(r.dataset), "metric": metric_cell(r.metric),
                           "published": reported_cell(r)} for r in mine])
    return as_table(frame, "published", "published numbers of this encoder (never ranked with runs)",
                    index_name="#", heads=[plain(i + 1, i + 1) for i in range(len(mine))])
