"""The calibration table of a board: ECE with the temperature-scaled ECE beside it, Brier and
AURC, per encoder, for the variants that store class probabilities (the main and detail
variants, and a few-shot sweep's recorded repetitions). docs/metrics.md defines them."""

from __future__ import annotations

import pandas as pd

from hemabench.leaderboard.collect import Board
from hemabench.leaderboard.tables import as_table, score_cell
from hemabench.results import Result

COLUMNS = {"ece": "ECE", "ece_ts": "ECE (temperature-scaled)", "brier": "Brier", "aurc": "AURC"}
NO_SLICE = ("no temperature: the fit used every training cell (e.g. a support set as large as each class), so "
            "no held-out training cell was left to fit it on")


def _variants(result: Result) -> list[str]:
    metrics = result.metrics
    wanted = [result.main_variant, result.detail_variant]
    wanted += sorted(k[: -len("/ece")] for k in metrics if k.endswith("/ece") and "/rep" in k)  # recorded repetitions
    return [v for v in dict.fromkeys(wanted) if f"{v}/ece" in metrics]


def calibration_table(board: Board) -> dict | None:
    rows, heads = [], []
    for encoder in board.sorted_encoders():
        metrics = board.entries[encoder].result.metrics
        for variant in _variants(board.entries[encoder].result):
            row = {name: score_cell(metrics.get(f"{variant}/{key}")) for key, name in COLUMNS.items()}
            if f"{variant}/ece_ts" not in metrics:  # an empty slice: every training cell was fitted on
                row[COLUMNS["ece_ts"]] = {"text": "no slice", "sort": "", "title": NO_SLICE}
            rows.append({"variant": {"text": variant, "sort": variant}, **row})
            heads.append(encoder)
    if not rows:
        return None
    frame = pd.DataFrame(rows, index=heads)
    return as_table(frame, "calibration", "calibration, % (ECE: 15 equal-width bins on the top-class confidence; "
                    "temperature fitted on a held-out slice of the training part; Brier x 100; AURC: area under the "
                    "risk-coverage curve; lower is better for all)", index_name="encoder")
