"""The calibration table of a board: ECE and its debiased counterpart, each raw and temperature-
scaled, NLL beside them (what temperature scaling minimises), Brier and AURC, per encoder, for
the variants that store class probabilities (the main and detail variants, and a few-shot sweep's
recorded repetitions); and a note when the test set is too small for ECE to separate the encoders.
docs/metrics.md defines them."""

from __future__ import annotations

import pandas as pd

from hemabench.leaderboard.collect import Board
from hemabench.leaderboard.names import metric_unit
from hemabench.leaderboard.tables import as_table, unit_cell
from hemabench.results import Result

COLUMNS = {"ece": "ECE", "ece_debiased": "ECE debiased", "ece_ts": "ECE (temperature-scaled)",
           "ece_debiased_ts": "ECE debiased (temperature-scaled)", "nll": "NLL", "nll_ts": "NLL (temperature-scaled)",
           "brier": "Brier", "aurc": "AURC"}
# lower is better for every one of them; the unit each is shown in (names.metric_unit)
COLUMNS = {k: f"{v} ↓, {metric_unit(k)[0]}" for k, v in COLUMNS.items()}
SCALED = {"ece_ts", "ece_debiased_ts", "nll_ts"}
NO_SLICE = ("no temperature: the fit used every training cell (e.g. a support set as large as each class), so "
            "no held-out training cell was left to fit it on")
CAPTION = ("calibration (ECE: 15 equal-width bins on the top-class confidence, %; ECE debiased: the root-mean-square "
           "calibration error on the same bins with each bin's sampling noise subtracted, %, 0 = indistinguishable from "
           "calibrated on this test set; NLL: mean negative log-likelihood of the true class, nats, what the temperature "
           "minimises; temperature fitted on a held-out slice of the training part; Brier: mean squared distance of the "
           "predicted probabilities from the one-hot true class, 0 to 2, not a percentage; AURC: area under the "
           "risk-coverage curve, mean error rate, %; lower is better for all)")


def _variants(result: Result) -> list[str]:
    metrics = result.metrics
    wanted = [result.main_metric_variant, result.detail_variant]
    wanted += sorted(k[: -len("/ece")] for k in metrics if k.endswith("/ece") and "/rep" in k)  # recorded repetitions
    return [v for v in dict.fromkeys(wanted) if f"{v}/ece" in metrics]


def test_cells(result: Result, variant: str) -> int | None:
    """How many test predictions the variant's calibration numbers rest on (None: not stored)."""
    stored = result.variant_predictions(variant) or {}
    return len(stored["true"]) if "true" in stored else None


def calibration_table(board: Board) -> dict | None:
    rows, heads = [], []
    for encoder in board.sorted_encoders():
        result = board.entries[encoder].result
        for variant in _variants(result):
            row = {name: unit_cell(result.metrics.get(f"{variant}/{key}"), key) for key, name in COLUMNS.items()}
            if f"{variant}/ece_ts" not in result.metrics:  # an empty slice: every training cell was fitted on
                for key in SCALED:
                    row[COLUMNS[key]] = {"text": "no slice", "sort": "", "title": NO_SLICE}
            n = test_cells(result, variant)
            rows.append({"variant": {"text": variant, "sort": variant},
                         "test cells": {"text": "–" if n is None else str(n), "sort": "" if n is None else n}, **row})
            heads.append(encoder)
    if not rows:
        return None
    return as_table(pd.DataFrame(rows, index=heads), "calibration", CAPTION, index_name="encoder")


def separation_note(board: Board) -> str | None:
    """A sentence for the board when the ECE of no two encoders is told apart on the main variant: every
    pair of 95% intervals overlaps, so the test set is too small for ECE to rank them (None otherwise)."""
    found = []
    for encoder in board.sorted_encoders():
        result = board.entries[encoder].result
        score = result.metrics.get(f"{result.main_metric_variant}/ece")
        if score and score.get("ci95"):
            found.append((encoder, score["ci95"], test_cells(result, result.main_metric_variant)))
    if len(found) < 2:
        return None
    apart = [(a, b) for i, (a, ca, _) in enumerate(found) for b, cb, _ in found[i + 1:]
             if ca[1] < cb[0] or cb[1] < ca[0]]
    if apart:
        return None
    sizes = sorted({n for *_, n in found if n is not None})
    cells = f" ({', '.join(map(str, sizes))} test predictions)" if sizes else ""
    return (f"This test set is too small for ECE to separate the encoders{cells}: the 95% intervals of their "
            f"{board.main_metric.rsplit('/', 1)[0]} ECE all overlap, so differences in ECE here, and rises or falls "
            "after temperature scaling, are within binning and sampling noise. Read the NLL and the debiased ECE, "
            "and compare on a larger test set.")
