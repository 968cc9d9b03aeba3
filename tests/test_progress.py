"""Progress bars: every protocol shows one on stderr (fits, folds, runs, epochs), --quiet shows none."""

from __future__ import annotations

import re

from hemabench.pipeline.runner import RunOptions, run_plan

PLAN = [("cell-probe", "synth-bm"), ("cell-knn", "synth-bm"), ("label-efficiency", "synth-bm"),
        ("bm-to-blood", "synth-blood"), ("aml-mil", "synth-aml"), ("breakhis-binary", "synth-breakhis"),
        ("blood-shift", "synth-blood")]
LIGHT = {"label-efficiency": {"repetitions": 2}, "bm-to-blood": {"repetitions": 2},
         "aml-mil": {"seeds": 1, "max_epochs": 2, "patience": 1}}
BARS = {  # the bar of each protocol: its label, and its final count (done/total with the unit)
    "cell-probe synth-bm": r"1/1 \[.*fold",
    "cell-knn synth-bm": r"1/1 \[.*fold",
    "label-efficiency synth-bm": r"(\d+)/\1 \[.*fit",
    "bm-to-blood synth-blood direct": r"(\d+)/\1 \[.*fit",
    "bm-to-blood synth-blood adapt": r"(\d+)/\1 \[.*fit",
    "aml-mil synth-aml": r"10/10 \[.*run",  # 5 rotations x 1 seed x 2 heads
    "breakhis-binary synth-breakhis": r"(\d+)/\1 \[.*fold x mag",
    "blood-shift synth-blood": r"3/3 \[.*source",  # synth-bm, synth-blood, synth-blood-b
}


def test_every_protocol_shows_a_bar_and_quiet_shows_none(tmp_path, capsys):
    report = run_plan(["handcrafted"], PLAN, RunOptions(out=tmp_path / "a", device="cpu", progress=True,
                                                        task_params=LIGHT))
    assert [o.status for o in report.outcomes] == ["computed"] * len(PLAN)
    err = capsys.readouterr().err
    for label, final in BARS.items():
        assert re.search(re.escape(label) + r": 100%\|.*" + final, err), label
    assert not re.search(r"amil \S+/s0: .*epoch", err)  # on CPU the MIL runs go to worker processes: runs, not epochs
    assert re.search(r"cell-probe synth-bm L-BFGS: .*\d+/1000 \[.*iter", err)  # iterations within a fold
    assert re.search(r"cell-knn synth-bm test cells: +\d+%.*/\d+ \[.*cell", err)  # test cells within a fold

    report = run_plan(["handcrafted"], PLAN, RunOptions(out=tmp_path / "b", device="cpu", progress=False,
                                                        task_params=LIGHT))
    assert [o.status for o in report.outcomes] == ["computed"] * len(PLAN)
    assert capsys.readouterr().err == ""


def test_cli_quiet_hides_the_bars_and_the_default_shows_them(tmp_path, cli):
    args = ("run", "--suite", "demo", "--encoder", "handcrafted", "--task", "cell-knn", "--dataset", "synth-bm",
            "--device", "cpu", "--overwrite", "--out", tmp_path)
    code, out, err = cli(*args)
    assert code == 0 and re.search(r"cell-knn synth-bm: 100%\|.*1/1", err)
    code, out, err = cli(*args, "--quiet")
    assert code == 0 and err == "" and "cell-knn" in out  # the summary table still prints
