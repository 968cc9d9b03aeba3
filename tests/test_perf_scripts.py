"""Smoke tests of the performance scripts in benchmarks/perf: each runs as a subprocess at a
tiny size and must print its figures and write a JSON with the machine and positive numbers.
They check that the scripts work, not how fast anything is."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"


def load_script(name: str):
    """Import ``benchmarks/perf/<name>`` as a module (sys.path restored afterwards)."""
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location(f"perf_{Path(name).stem}", PERF / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def run_script(name: str, tmp_path: Path, *args: str, expect_rc: int = 0) -> tuple[str, dict]:
    """Run ``benchmarks/perf/<name>`` with ``--json``; returns (stdout, the JSON)."""
    out = tmp_path / f"{Path(name).stem}.json"
    proc = subprocess.run([sys.executable, str(PERF / name), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect_rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == Path(name).stem
    assert payload["machine"]["logical_cores"] >= 1 and payload["machine"]["torch"]
    assert payload["date"] and payload["figures"]
    assert proc.stdout.startswith("machine : ")
    return proc.stdout, payload


def test_common_helpers(tmp_path):
    _common = load_script("_common.py")
    calls = []
    median, times = _common.median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and min(times) <= median <= max(times)
    info = _common.machine()
    assert {"cpu", "logical_cores", "affinity_cores", "ram_gib", "torch", "cuda_device", "python"} <= set(info)
    assert "logical cores" in _common.machine_line(info)
    _common.write_json(tmp_path / "x" / "f.json", {"figures": [{"a": 1}]})
    payload = json.loads((tmp_path / "x" / "f.json").read_text())
    assert payload["figures"] == [{"a": 1}] and payload["machine"]["python"] and payload["date"]


def test_probe_vs_sklearn(tmp_path):
    stdout, payload = run_script("probe_vs_sklearn.py", tmp_path, "--n", "600", "--dim", "32", "--classes", "5",
                                 "--repeats", "2", "--sklearn-repeats", "1", "--device", "cpu")
    assert "speed-up" in stdout
    assert payload["seconds_ours"] > 0 and payload["seconds_sklearn"] > 0 and payload["speedup"] > 0
    assert payload["agreement"] > 0.9
    assert payload["args"]["n"] == 600 and payload["args"]["dim"] == 32


def test_probe_defaults_are_the_issue_size():
    help_text = subprocess.run([sys.executable, str(PERF / "probe_vs_sklearn.py"), "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--json" in help_text and "--repeats" in help_text
    source = (PERF / "probe_vs_sklearn.py").read_text()
    assert 'default=50_000' in source and 'default=1024' in source and 'default=21' in source


def test_mil_fold_small(tmp_path):
    stdout, payload = run_script("mil_fold.py", tmp_path, "--shapes", "small", "--repeats", "1",
                                 "--max-epochs", "3", "--patience", "2", "--device", "cpu")
    rows = payload["figures"]
    assert {(r["shape"], r["head"]) for r in rows} == {("small", "amil"), ("small", "abmil")}
    for r in rows:
        assert r["s/fold (median)"] > 0 and 1 <= r["epochs"] <= 3 and 0 <= r["test weighted F1"] <= 1
    assert payload["task_params"]["max_epochs"] == 3 and payload["task_params"]["cpu_threads"] == 1
    assert payload["shapes"]["small"]["patients"] == 40
    assert "amil" in stdout and "abmil" in stdout


def test_extraction_memory_two_sizes(tmp_path):
    stdout, payload = run_script("extraction_memory.py", tmp_path, "--sizes", "40", "80", "--encoder",
                                 "handcrafted", "--device", "cpu", "--batch-size", "16")
    rows = payload["figures"]
    assert [r["images"] for r in rows] == [40, 80]
    for r in rows:
        assert r["RSS before (MB)"] > 0 and r["extraction peak (MB)"] >= r["RSS before (MB)"] * 0.9
        assert r["seconds"] > 0 and r["images/s"] > 0
    assert {"growth_ratio", "mb_per_1000_images"} <= set(payload)
    assert "growth at 80 / growth at 40" in stdout


def test_demo_cold_vs_cached_fails_on_recomputation():
    problems = load_script("demo_cold_vs_cached.py").problems
    cold = {"images_forwarded": 660, "statuses": {"computed": 2}}
    clean = {"images_forwarded": 0, "statuses": {"reused": 2}}
    assert problems([cold], [clean, clean]) == []
    found = problems([{"images_forwarded": 0, "statuses": {"reused": 2}}],
                     [clean, {"images_forwarded": 5, "statuses": {"reused": 1, "computed": 1}}])
    assert len(found) == 3 and "forwarded 5 images" in found[0] and "computed 1 results" in found[1]


@pytest.mark.slow
def test_demo_cold_vs_cached_narrowed(tmp_path):
    stdout, payload = run_script("demo_cold_vs_cached.py", tmp_path, "--encoder", "handcrafted", "--task",
                                 "cell-knn", "--dataset", "synth-bm", "--repeats", "1", "--device", "cpu")
    by_phase = {r["phase"]: r for r in payload["figures"]}
    assert by_phase["cold, incl. data generation"]["images forwarded"] > 0
    assert by_phase["cold, data present"]["computed"] == 1
    assert by_phase["cached re-run"]["images forwarded"] == 0 and by_phase["cached re-run"]["reused"] == 1
    assert all(r["seconds (median)"] > 0 for r in payload["figures"])


@pytest.mark.slow
def test_label_efficiency_sweep(tmp_path):
    _, payload = run_script("label_efficiency_sweep.py", tmp_path, "--repetitions", "2",
                            "--reference-repetitions", "1", "--repeats", "1")
    assert payload["seconds_full_sweep"] > 0 and payload["seconds_reference"] > 0 and payload["speedup"] > 0
    assert payload["reference_repetitions"] == 1 and payload["max_mean_diff_points"] < 5
    assert 0.99 <= payload["prediction_agreement"] <= 1


def test_label_efficiency_sweep_without_data(tmp_path):
    stdout, payload = run_script("label_efficiency_sweep.py", tmp_path, "--synthetic-features", "matek-blood",
                                 "--dim", "8", "--repetitions", "1", "--reference-repetitions", "1", "--grid", "1", "5")
    assert "synthetic matek-blood sizes: 12855 train / 5510 test, 8-d, 15 classes" in stdout
    assert payload["speedup"] > 0 and payload["max_mean_diff_points"] >= 0
    assert 0.99 <= payload["prediction_agreement"] <= 1 and "seconds_full_sweep" not in payload


def test_extraction_throughput(tmp_path):
    stdout, payload = run_script("extraction_throughput.py", tmp_path, "--encoder", "handcrafted", "--images", "24",
                                 "--repeats", "1", "--like", "aml-hehr", "--images-dir", str(tmp_path / "img"))
    (row,) = payload["figures"]
    assert row["images"] == 24 and row["batch size"] == 64 and row["device"] == "cpu"
    for key in ("full img/s", "pixel-cache img/s", "bare forward img/s"):
        assert row[key] > 0
    assert row["full / bare"] == pytest.approx(row["full img/s"] / row["bare forward img/s"])
    assert len(list((tmp_path / "img" / "aml-hehr").glob("*.tif"))) == 24  # TIFF 144x144, like AML Hehr


def test_decode_cost(tmp_path):
    stdout, payload = run_script("decode_cost.py", tmp_path, "--encoder", "handcrafted", "--images", "6",
                                 "--repeats", "1", "--datasets", "raabin", "breakhis",
                                 "--images-dir", str(tmp_path / "img"))
    raabin, breakhis = payload["figures"]
    assert (raabin["format"], raabin["size"]) == ("JPEG", "575x575") and raabin["JPEG draft+resize ms"] > 0
    assert (breakhis["format"], breakhis["size"]) == ("PNG", "700x460") and breakhis["JPEG draft+resize ms"] is None
    for row in (raabin, breakhis):
        assert 0 < row["decode ms"] and 0 < row["decode+resize ms"] and row["bottleneck"] in ("decode", "model")


def test_protocols_at_scale_quick(tmp_path):
    stdout, payload = run_script("protocols_at_scale.py", tmp_path, "--quick")
    rows = {(r["task"], r["dataset"]): r for r in payload["figures"]}
    assert {("label-efficiency", d) for d in ("acevedo", "matek-blood", "matek-bm")} <= set(rows)
    assert {("cell-probe", "matek-bm"), ("cell-knn", "acevedo"), ("bm-to-blood", "matek-blood"),
            ("aml-mil", "aml-hehr")} <= set(rows)
    # the units follow from the protocols and the real class sizes, not from the timings
    assert rows[("cell-probe", "acevedo")]["units"] == 5 and rows[("cell-knn", "matek-bm")]["units"] == 1
    assert rows[("aml-mil", "aml-hehr")]["units"] == 30
    # --quick times n = 1 and 5: no class saturates, so 100 repetitions x 2 n x 3 classifiers at the cap;
    # bm-to-blood: 100 direct fits + 100 x 2 adapt fits
    assert rows[("label-efficiency", "acevedo")]["units"] == 600 and rows[("bm-to-blood", "acevedo")]["units"] == 300
    for r in payload["figures"]:
        assert r["s/unit"] > 0 and r["projected h"] >= 0 and r["peak GiB (est.)"] >= 0
    le = rows[("label-efficiency", "matek-bm")]
    assert 0 < le["projected h (rule)"] <= le["projected h"] and le["plain / engine"] > 0
    per_n = payload["details"]["label-efficiency matek-bm 16"]
    assert sorted(per_n, key=int) == ["1", "5"] and all(len(v["seconds"]) == 2 for v in per_n.values())
    assert "plain_seconds" in per_n["5"] and "not measured" in stdout


def test_backend_speedup_quick(tmp_path):
    pytest.importorskip("distributed")
    stdout, payload = run_script("backend_speedup.py", tmp_path, "--quick", "--workers", "1", "2")
    assert [r["workers"] for r in payload["figures"]] == [1, 1, 2]
    assert payload["identical"] is True and all(r["seconds"] > 0 for r in payload["figures"])


def test_score_result(tmp_path):
    stdout, payload = run_script("score_result.py", tmp_path, "--samples", "300", "--variants", "2", "--classes", "3",
                                 "--patients", "6", "--proba", "--n-boot", "50", "--repeats", "1")
    row = payload["figures"][0]
    assert row["samples"] == 300 and row["json MB"] > 0 and row["median s"] > 0 and "s per MB" in stdout


def test_metadata_sheet_small(tmp_path):
    stdout, payload = run_script("metadata_sheet.py", tmp_path, "--rows", "300", "--images", "20", "--repeats", "1")
    row = payload["figures"][0]
    assert row["records"] == 20 and row["skipped"] == 280 and row["summary lines"] < 20
    assert row["discovery median s"] > 0 and "discovering a folder: dataset" in stdout
