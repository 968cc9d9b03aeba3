"""encoder_cost: measured per run, typed in the result schema, checked by validate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from hemabench.embeddings.cost import extraction_throughput, forward_gflops, forward_throughput, parameter_count
from hemabench.embeddings.extract import ExtractionStats
from hemabench.submissions.validate import validate_result

REFERENCE = Path(__file__).resolve().parents[1] / "submissions" / "resnet18-random" / "results" / "cell-probe" / "synth-bm.json"


def test_flops_of_a_linear_layer_match_the_formula():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    # one image: a (1 x 192) @ (192 x 10) product = 2 * 192 * 10 FLOPs (multiply and add)
    assert forward_gflops(model, 8) == pytest.approx(2 * 192 * 10 / 1e9, abs=1e-4)
    assert parameter_count(model) == 192 * 10 + 10


def test_nothing_countable_gives_none_not_zero():
    assert forward_gflops(nn.Identity(), 8) is None


def test_forward_throughput_reports_device_batch_and_memory():
    out = forward_throughput(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)), 8, torch.device("cpu"),
                             seconds=0.05)
    assert out["forward_images_per_s"] > 0 and out["forward_batch_size"] == 32
    assert out["peak_memory_mb"] > 0 and "CPU" in out["peak_memory_kind"]


def test_extraction_rate_from_this_run_or_unknown():
    fresh = ExtractionStats("k", 100, False, 4.0, "cpu")
    assert extraction_throughput(fresh) == {"extraction_images_per_s": 25.0, "extraction_images": 100,
                                            "extraction_device": "cpu"}
    cached = ExtractionStats("no-such-cache-key", 0, True, 0.01, "none")
    assert extraction_throughput(cached)["extraction_images_per_s"] is None


COST = {"parameters": 11176512, "embedding_dim": 512, "input_size": 112, "gflops_per_image": 0.97,
        "flops_note": "", "device": "cpu (x86_64, 2 threads)", "forward_images_per_s": 20.0,
        "forward_batch_size": 32, "peak_memory_mb": 900.0, "peak_memory_kind": "process",
        "extraction_images_per_s": 17.5, "extraction_images": 480, "extraction_device": "cpu"}


@pytest.mark.parametrize("change, ok", [
    ({}, True),
    ({"gflops_per_image": None, "extraction_images_per_s": None, "extraction_device": None}, True),
    ({"parameters": "11M"}, False),
    ({"forward_images_per_s": 0}, False),
    ({"device": 3}, False),
    ({"surprise": 1}, False),
])
def test_validate_checks_the_cost_block_types(tmp_path, change, ok):
    result = json.loads(REFERENCE.read_text())
    result["encoder_cost"] = {**COST, **change}
    path = tmp_path / "synth-bm.json"
    path.write_text(json.dumps(result))
    problems = [p for p in validate_result(path, "x.json") if "encoder_cost" in p.field]
    assert (problems == []) == ok, problems


@pytest.mark.slow
def test_a_real_run_records_cost_for_each_encoder(tmp_path, monkeypatch):
    """End to end on the demo data (CPU): both offline baselines get a typed cost block."""
    from hemabench.pipeline.runner import RunOptions, run_plan

    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))
    report = run_plan(["handcrafted", "resnet18-random"], [("cell-knn", "synth-blood")],
                      RunOptions(out=tmp_path / "out", progress=False, device="cpu"))
    costs = {o.encoder: o.result.encoder_cost for o in report.outcomes}
    assert costs["resnet18-random"]["parameters"] == 11176512 and costs["resnet18-random"]["gflops_per_image"] > 0
    assert costs["handcrafted"]["parameters"] == 0 and costs["handcrafted"]["gflops_per_image"] is None
    for outcome in report.outcomes:
        assert [p for p in validate_result(outcome.path, "x") if "encoder_cost" in p.field] == []
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
