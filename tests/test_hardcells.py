"""Hard cells: the 80% rule, the most common wrong label, class shares and clustering, and the
board section with JPEG thumbnails (ids only without a data root)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hemabench.leaderboard.hardcells import class_shares, clustering, hard_cells
from hemabench.results import Result


def test_eighty_percent_rule_and_most_common_wrong_label():
    cells = {("f", f"c{i}"): t for i, t in enumerate("AAABBC")}
    # five encoders; c0 wrong for 4 (80%: hard), c1 wrong for 3 (60%: not), c5 wrong for all
    wrong = {"c0": ["B", "B", "C", "C", None], "c1": ["B", "B", "B", None, None], "c5": ["A", "A", "B", "A", "A"]}
    predictions = {}
    for e in range(5):
        predictions[f"enc{e}"] = {k: (t, (wrong.get(k[1]) or [None] * 5)[e] or t) for k, t in cells.items()}
    hard = hard_cells(predictions)
    assert hard["id"].tolist() == ["c0", "c5"]
    assert hard.set_index("id").loc["c0", "wrong"] == "B"  # 2 B vs 2 C: alphabetical tie-break
    assert hard.set_index("id").loc["c5", "wrong"] == "A" and hard["n_wrong"].tolist() == [4, 5]
    shares = class_shares(hard, predictions)
    assert shares.loc["A", "test cells"] == 3 and shares.loc["A", "share of class"] == pytest.approx(1 / 3)
    assert shares.loc["C", "share of hard cells"] == pytest.approx(0.5)
    assert clustering(shares, len(hard))["k"] == 2


def test_clustered_when_few_classes_hold_most_hard_cells():
    shares = pd.DataFrame({"hard cells": [9, 1, 0, 0, 0, 0]}, index=list("ABCDEF"))
    assert clustering(shares, 10) == {"classes": ["A"], "k": 1, "of": 6, "clustered": True}  # 90% in A
    spread = pd.DataFrame({"hard cells": [2, 2, 2, 2, 2]}, index=list("ABCDE"))
    assert clustering(spread, 10)["clustered"] is False


def test_board_section_with_thumbnails(tmp_path):
    import test_leaderboard as tl

    from hemabench.leaderboard import build_site

    root = tmp_path / "data" / "acevedo-like"
    labels = ["A", "B", "C"]
    ids = [f"{labels[i % 3]}/img_{i}.png" for i in range(30)]
    true = [labels[i % 3] for i in range(30)]
    for i, rel in enumerate(ids):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((200, 150, 3), 8 * i, np.uint8)).save(root / rel)
    run = tmp_path / "run"
    for e, encoder in enumerate(("enc-a", "enc-b", "enc-c")):
        pred = ["B" if (t == "A" and i < 6) else t for i, t in enumerate(true)]  # A cells 0, 3: wrong for all
        pred[9 + e] = "C" if true[9 + e] != "C" else "A"  # one-off errors, not hard
        result = tl.make_result("cell-probe", "synth-blood", encoder, labels,
                                {"probe": {"id": ids, "fold": ["test"] * 30, "true": true, "pred": pred}},
                                "probe/balanced_accuracy")
        tl.write(run, result)
    from hemabench.leaderboard import build as build_module

    site_root = tmp_path / "site"
    original = build_module.Site._root
    build_module.Site._root = lambda self, dataset: root.resolve()
    try:
        build_site(site_root, None, [run], data_root=str(tmp_path / "data"), figures=False)
    finally:
        build_module.Site._root = original
    page = next((site_root / "tasks").glob("cell-probe--*.html")).read_text()
    assert 'id="s-hard"' in page and "2 of 30 test cells are hard" in page
    thumbs = sorted((site_root / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 2
    with Image.open(thumbs[0]) as image:
        assert image.format == "JPEG" and max(image.size) <= 96
    plain_site = tmp_path / "plain"
    build_site(plain_site, None, [run], figures=False)  # no --data-root: ids only
    page = next((plain_site / "tasks").glob("cell-probe--*.html")).read_text()
    assert "A/img_0.png" in page and not (plain_site / "thumbs").exists()


def test_shift_matrix_from_per_fold_values():
    """The shift section reads the matrix from per-fold metric values of a real blood-shift result."""
    from hemabench.leaderboard.shift import shift_matrix

    fold_order = ["x", "y"]
    result = Result.from_dict({
        "task": "blood-shift", "task_version": 1, "dataset": "synth-blood", "encoder": {"name": "e"},
        "main_metric": "shifted/balanced_accuracy",
        "predictions": {"in-domain": {"fold": ["x", "x", "y"]}, "shifted": {"fold": ["x->y", "y->x", "y->x"]}},
        "metrics": {"in-domain/balanced_accuracy": {"values": [0.9, 0.8]},
                    "shifted/balanced_accuracy": {"values": [0.5, 0.4]}},
        "extra": {"panel": fold_order}})
    m = shift_matrix(result, "balanced_accuracy")
    assert m.loc["x", "x"] == 0.9 and m.loc["y", "y"] == 0.8 and m.loc["x", "y"] == 0.5 and m.loc["y", "x"] == 0.4


def test_calibration_table_on_a_probabilistic_board():
    import test_leaderboard as tl

    from hemabench.leaderboard.calibration import calibration_table
    from hemabench.leaderboard.collect import Board

    board = Board(("aml-mil", "synth-aml"))
    for i, encoder in enumerate(("enc-a", "enc-b")):
        result = Result.from_dict(tl.mil_result(encoder, 0.8 - 0.3 * i, i))
        board.entries[encoder] = type("E", (), {"result": result, "main": result.main})()
    table = calibration_table(board)
    texts = [c["text"] for c in table["columns"]]
    assert texts[:2] == ["encoder", "variant"] and {"ECE ↓, %", "ECE (temperature-scaled) ↓, %", "Brier ↓, 0 to 2", "AURC ↓, %"} <= set(texts)
    first = table["rows"][0]
    ece = board.entries["enc-a"].result.metrics["amil/ece"]["mean"]
    at = {t: i - 1 for i, t in enumerate(texts)}  # cells follow the row head
    assert first["head"]["text"] == "enc-a" and first["cells"][at["ECE ↓, %"]]["data"]["mean"] == repr(ece)
    assert first["cells"][at["ECE (temperature-scaled) ↓, %"]]["text"] == "no slice"  # no training slice stored: no temperature-scaled number


def test_tied_classes_are_listed_by_name_whatever_the_set_order():
    """The site is reproducible: ties in the hard-class table do not follow PYTHONHASHSEED."""
    import subprocess
    import sys

    script = ("from hemabench.leaderboard.hardcells import class_shares, hard_cells\n"
              "p = {e: {('f', f'c{i}'): (t, 'q') for i, t in enumerate('zyxwvu')} for e in 'ab'}\n"
              "print(list(class_shares(hard_cells(p), p).index))")
    orders = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout for seed in range(4)}
    assert orders == {"['u', 'v', 'w', 'x', 'y', 'z']\n"}
