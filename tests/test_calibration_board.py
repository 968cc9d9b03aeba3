"""The site's calibration table (issue 27): NLL and the debiased ECE beside the 15-bin ECE, and a note
when the test set is too small for ECE to separate the encoders. Runs are FABRICATED: made-up
probabilities scored by the real scorer."""

from __future__ import annotations

import numpy as np
import pytest
from test_leaderboard import make_result

from hemabench.leaderboard.calibration import COLUMNS, calibration_table, separation_note
from hemabench.leaderboard.collect import Board, Entry, board_key
from hemabench.results import Result
from hemabench.results.calibration import ece_debiased

LABELS = ["A", "B"]


def run(encoder: str, n: int, shift: float, seed: int) -> Result:
    """n cells whose top-class confidence is ``shift`` above the rate at which the top class is right."""
    rng = np.random.default_rng(seed)
    accuracy = rng.uniform(0.55, 0.8, n)
    right = rng.random(n) < accuracy
    confidence = np.clip(accuracy + shift, 0.51, 0.999)
    true = [LABELS[i % 2] for i in range(n)]
    pred = [t if ok else LABELS[1 - LABELS.index(t)] for t, ok in zip(true, right)]
    proba = [[c, 1 - c] if p == "A" else [1 - c, c] for p, c in zip(pred, confidence)]
    predictions = {"probe": {"id": [f"c{i}" for i in range(n)], "fold": ["test"] * n, "true": true, "pred": pred,
                             "proba": proba}}
    return Result.from_dict(make_result("cell-probe", "synth-bm", encoder, LABELS, predictions, "probe/accuracy"))


def board_of(*results: Result) -> Board:
    board = Board(board_key(results[0]))
    for r in results:
        board.entries[r.encoder] = Entry(r, None, "local run")
    return board


def test_small_test_set_gets_the_note_and_a_large_one_does_not():
    small = board_of(run("calibrated", 60, 0.0, 1), run("overconfident", 60, 0.08, 2))
    note = separation_note(small)
    assert note is not None and "too small for ECE to separate the encoders (60 test predictions)" in note
    large = board_of(run("calibrated", 4000, 0.0, 1), run("overconfident", 4000, 0.2, 2))
    assert separation_note(large) is None  # 4000 cells: the 20-point overconfidence is told apart
    assert separation_note(board_of(run("alone", 60, 0.0, 1))) is None  # one encoder: nothing to separate


def test_table_shows_nll_and_the_debiased_ece_from_the_stored_metrics():
    board = board_of(run("calibrated", 300, 0.0, 1), run("overconfident", 300, 0.2, 2))
    table = calibration_table(board)
    heads = [c["text"] for c in table["columns"]]
    assert {"test cells", COLUMNS["nll"], COLUMNS["ece_debiased"]} <= set(heads)
    for row in table["rows"]:
        result = board.entries[row["head"]["text"]].result
        cells = dict(zip(heads[1:], row["cells"]))
        assert cells["test cells"]["text"] == "300"
        assert cells[COLUMNS["nll"]]["text"].startswith(f"{result.metrics['probe/nll']['mean']:.3f}")
        stored = result.variant_predictions("probe")
        true = np.array([LABELS.index(t) for t in stored["true"]])
        value = ece_debiased(true, np.asarray(stored["proba"], dtype=float))  # an independent recomputation
        assert result.metrics["probe/ece_debiased"]["mean"] == pytest.approx(value)
        assert cells[COLUMNS["ece_debiased"]]["text"].startswith(f"{100 * value:.1f}")
