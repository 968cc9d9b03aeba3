"""One definition each: the canonical-JSON hash, the cost cells, the device/precision policy."""

from __future__ import annotations

import ast
import hashlib
import os
import statistics
from pathlib import Path

import pytest
import torch

import hemabench
from hemabench.compute.device import autocast, autocast_name, default_workers
from hemabench.files.canonical import canonical_json, canonical_sha256, same_json
from hemabench.leaderboard.context import COST_COLUMNS, cost_cells
from hemabench.results import Result
from hemabench.submissions.ledger import result_sha256

PACKAGE = Path(hemabench.__file__).resolve().parent


def _calls(name: str, attr: str):
    """(file, line) of every ``name.attr(...)`` call in the package."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == name):
                yield path.relative_to(PACKAGE).as_posix(), node


def test_canonical_json_is_sorted_and_its_hash_is_sha256_of_it():
    value = {"b": [1, 2.5, float("nan")], "a": {"y": Path("p"), "x": None}}
    assert canonical_json(value) == '{"a":{"x":null,"y":"p"},"b":[1,2.5,NaN]}'
    assert canonical_json(value, spaced=True) == '{"a": {"x": null, "y": "p"}, "b": [1, 2.5, NaN]}'
    assert canonical_sha256(value) == hashlib.sha256(canonical_json(value).encode()).hexdigest()
    assert same_json({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}) and not same_json([1, 2], [2, 1])
    result = {"task": "t", "task_version": 1, "dataset": "d", "encoder": {"name": "e"}, "main_metric": "m",
              "metrics": {"m": {"mean": 0.5}}}
    typed = Result.from_dict  # the whole result but its verification block: what a verification vouches for
    assert result_sha256(typed({**result, "verification": {"by": "x"}})) == result_sha256(typed(result)) == \
        canonical_sha256(result) != result_sha256(typed({**result, "metrics": {"m": {"mean": 0.6}}}))


def test_json_is_hashed_only_by_the_canonical_module():
    """A second ``sha256(json.dumps(...))`` drifts (separators, default=str): every one goes through canonical."""
    found = [f"{path}:{node.lineno}" for path, node in _calls("hashlib", "sha256")
             if any(isinstance(n, ast.Attribute) and n.attr == "dumps" for n in ast.walk(node))]
    assert found == []
    assert sorted({path for path, _ in _calls("json", "dumps")} & {"submissions/trust.py", "published/protocol.py"}) == []


def _cost(device: str, speed: float, **extra) -> dict:
    return {"device": device, "forward_images_per_s": speed, "gflops_per_image": 1.234, "flops_note": "fvcore",
            "forward_batch_size": 32, **extra}


def test_cost_cells_of_one_result_and_of_several():
    assert [c["text"] for c in cost_cells([]).values()] == ["–"] * 3
    one = cost_cells([_cost("cpu", 12.34, extraction_images_per_s=5.55, extraction_device="cpu")])
    assert [one[c]["text"] for c in COST_COLUMNS] == ["1.23", "12.3", "5.5"]
    assert one[COST_COLUMNS[1]]["title"] == "bare forward, batch 32, on cpu" and one[COST_COLUMNS[1]]["sub"] == "cpu"
    costs = [_cost("cpu", 10.0), _cost("cpu", 30.0), _cost("cpu", 14.0), _cost("cuda", 900.0)]
    many = cost_cells(costs)
    assert many[COST_COLUMNS[1]]["text"] == f"{statistics.median([10.0, 30.0, 14.0]):.1f}"  # the first device's only
    assert many[COST_COLUMNS[1]]["sub"] == "cpu; 2 devices, see the encoder page"
    assert many[COST_COLUMNS[2]]["text"] == "–"  # extraction speed depends on the dataset: one result only


def test_one_device_and_precision_policy():
    cpu = torch.device("cpu")
    assert autocast_name(cpu) == "off"
    with autocast(cpu):
        assert not torch.is_autocast_enabled("cpu")  # float32 on CPU
    assert autocast_name(torch.device("cuda")) == "bfloat16"
    cores = len(os.sched_getaffinity(0))
    assert default_workers(cpu, resumable=True) == 0
    assert default_workers(cpu) == max(0, min(4, cores - 1))
    assert default_workers(torch.device("cuda")) == min(8, cores)
    assert [path for path, _ in _calls("torch", "autocast")] == ["compute/device.py"]
    assert [path for path, _ in _calls("os", "sched_getaffinity")] == ["compute/device.py"]


@pytest.mark.parametrize("name", ["N_BOOT", "N_BOOTSTRAP"])
def test_one_replicate_count(name):
    """Only ``hemabench/results/intervals.py`` defines a replicate count (blood-shift once used 200, the rest 1000)."""
    defined = [path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
               for node in ast.parse(path.read_text(encoding="utf-8")).body
               if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)]
    assert defined == (["results/intervals.py"] if name == "N_BOOTSTRAP" else [])
