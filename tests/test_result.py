"""The typed Result: what it reads from a result file, how it refuses what is not one, and how
its numbers are shown (CI of the mean vs spread of single runs, fits stopped at max_iter)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hemabench.cli.run import print_summary
from hemabench.leaderboard.tables import score_cell
from hemabench.pipeline.runner import Outcome, RunReport
from hemabench.results import Result, ResultError

REFERENCES = Path(__file__).resolve().parents[1] / "submissions" / "handcrafted" / "results"


def test_accessors_read_what_the_json_says():
    path = REFERENCES / "label-efficiency" / "synth-bm.json"
    raw = json.loads(path.read_text())
    result = Result.load(path)
    assert (result.task, result.dataset, result.encoder) == ("label-efficiency", "synth-bm", "handcrafted")
    assert result.main_metric == "svm/balanced_accuracy_auc" and result.main_metric_variant == "svm"
    assert result.main_metric_name == "balanced_accuracy_auc"
    assert result.detail_variant == raw["task_metadata"]["detail_variant"] == "svm/n=50"
    assert result.params == raw["task_metadata"]["params"]
    assert result.main.mean == raw["metrics"]["svm/balanced_accuracy_auc"]["mean"]
    assert result.main.spread95 == tuple(raw["metrics"]["svm/balanced_accuracy_auc"]["spread95"])
    assert result.intervals["svm/n=50/accuracy"]["ci95"] == tuple(raw["metrics"]["svm/n=50/accuracy"]["ci95"])
    assert "svm/n=50" in result.variants and result.schema_errors() == []


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("metrics"), "missing metrics"),
    (lambda r: r.update(main_metric="svm/nope"), "no entry for its main metric 'svm/nope'"),
    (lambda r: r.update(encoder="handcrafted"), "encoder and metrics must be objects"),
])
def test_a_file_that_is_not_a_result_is_one_line_naming_it(tmp_path, edit, message):
    raw = json.loads((REFERENCES / "label-efficiency" / "synth-bm.json").read_text())
    edit(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ResultError, match=f"^{path}: not a hemabench result .*{message}"):
        Result.load(path)
    path.write_text("{")
    with pytest.raises(ResultError, match=f"^{path}: not readable JSON"):
        Result.load(path)
    assert Result.read(path) is None


def _probe_result(statuses: list[str]) -> Result:
    raw = json.loads((REFERENCES / "cell-probe" / "synth-bm.json").read_text())
    raw = copy.deepcopy(raw)
    raw["extra"]["solver"] = [{"C": 1.0, "n_iter": 1000 if s == "max_iter" else 10, "status": s} for s in statuses]
    return Result.from_dict(raw)


def test_terminal_summary_labels_ci_and_spread_and_flags_max_iter(capsys):
    repeated = Result.load(REFERENCES / "label-efficiency" / "synth-bm.json")
    stopped = _probe_result(["max_iter", "converged"])
    report = RunReport([Outcome("handcrafted", "label-efficiency", "synth-bm", "reused", result=repeated),
                        Outcome("handcrafted", "cell-probe", "synth-bm", "computed", result=stopped)])
    print_summary(report)
    out = capsys.readouterr().out
    assert "95% CI of mean" in out and "spread95 (single runs)" in out
    low, high = repeated.main.spread95
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in out
    assert f"{100 * stopped.main.mean:.1f} (max_iter 1/2)" in out


def test_leaderboard_cell_labels_ci_and_spread_and_flags_max_iter():
    repeated = Result.load(REFERENCES / "label-efficiency" / "synth-bm.json")
    cell = score_cell(repeated.main)
    assert cell["sub"].startswith("CI [") and " · spread [" in cell["sub"]
    assert "95% CI of the mean" in cell["title"] and "spread of single runs" in cell["title"]
    stopped = _probe_result(["max_iter", "max_iter"])
    cell = score_cell(stopped.main, note=stopped.max_iter_note)
    assert cell["text"].endswith("(max_iter 2/2)") and "spread" not in cell["sub"]
    assert _probe_result(["converged"]).max_iter_note == ""
