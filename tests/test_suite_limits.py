"""Suites: ``encoder_datasets`` limits one encoder to some of the suite's datasets."""

from __future__ import annotations

import pytest

from hemabench.errors import HemabenchError
from hemabench.pipeline import suites

BASE = "name: x\nencoders: [handcrafted, resnet18-random]\ntasks: [cell-probe, bm-to-blood]\n" \
       "datasets: [synth-bm, synth-blood, acevedo-mini]\n"


@pytest.fixture
def suite_file(tmp_path, monkeypatch):
    """Write benchmarks/suites/x.yaml under tmp_path and load it."""
    (tmp_path / "suites").mkdir()
    monkeypatch.setattr(suites, "benchmarks_dir", lambda: tmp_path)

    def load(text: str):
        (tmp_path / "suites" / "x.yaml").write_text(text)
        return suites.load_suite("x")
    return load


def test_the_demo_runs_efficientnet_lite0_on_the_real_cells_only():
    demo = suites.load_suite("demo")
    assert "efficientnet-lite0" in demo.encoders
    assert demo.plan(encoder="efficientnet-lite0") == [("cell-probe", "acevedo-mini"), ("cell-knn", "acevedo-mini"),
                                                       ("label-efficiency", "acevedo-mini"), ("robustness", "acevedo-mini")]
    assert demo.plan(encoder="handcrafted") == demo.plan() and len(demo.plan()) == 17
    assert demo.plan(["cell-knn"], encoder="efficientnet-lite0") == [("cell-knn", "acevedo-mini")]


def test_a_limited_encoder_needs_a_cross_dataset_tasks_source_too(suite_file):
    limited = suite_file(BASE + "encoder_datasets:\n  resnet18-random: [synth-blood, acevedo-mini]\n")
    assert ("bm-to-blood", "synth-blood") in limited.plan()  # its source synth-bm is in the suite
    assert limited.plan(encoder="resnet18-random") == [("cell-probe", "synth-blood"), ("cell-probe", "acevedo-mini")]
    both = suite_file(BASE + "encoder_datasets:\n  resnet18-random: [synth-bm, synth-blood]\n")
    assert both.plan(encoder="resnet18-random") == [("cell-probe", "synth-bm"), ("cell-probe", "synth-blood"),
                                                    ("bm-to-blood", "synth-blood")]


@pytest.mark.parametrize("entry, message", [
    ("  dinobloom-b: [synth-bm]", "encoder_datasets names encoder 'dinobloom-b', which the suite does not run "
                                  "(its encoders: handcrafted, resnet18-random)"),
    ("  handcrafted: [acevedo]", "encoder_datasets[handcrafted] names 'acevedo', not among the suite's datasets "
                                 "(synth-bm, synth-blood, acevedo-mini)"),
    ("  handcrafted: []", "encoder_datasets[handcrafted] must be a non-empty list of dataset names, got []"),
    ("  handcrafted: synth-bm", "encoder_datasets[handcrafted] must be a non-empty list of dataset names, got 'synth-bm'"),
])
def test_a_bad_limit_fails_on_load_naming_the_file(suite_file, entry, message):
    with pytest.raises(HemabenchError) as caught:
        suite_file(BASE + "encoder_datasets:\n" + entry + "\n")
    assert str(caught.value).endswith(f"x.yaml: {message}")


def test_the_runner_applies_the_limit(tmp_path):
    from hemabench.pipeline.runner import RunOptions, run_plan

    plan = [("cell-knn", "synth-bm"), ("cell-knn", "acevedo-mini")]
    options = RunOptions(out=tmp_path, progress=False, device="cpu", encoder_datasets={"handcrafted": ("acevedo-mini",)})
    report = run_plan(["handcrafted"], plan, options)
    assert [(o.task, o.dataset, o.status) for o in report.outcomes] == [("cell-knn", "acevedo-mini", "computed")]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == \
        ["handcrafted/cell-knn/acevedo-mini.json"]
