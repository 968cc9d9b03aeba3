"""`hemabench run` / `extract` as a user runs them, on fixture trees in the real layouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from hemabench.results import SCHEMA_PATH


def acevedo_tree(root: Path, per_class: int = 14) -> Path:
    """Acevedo layout and names, with class-dependent colours so features carry signal."""
    prefixes = {"basophil": "BA", "eosinophil": "EO", "erythroblast": "ERB", "ig": "MY", "lymphocyte": "LY",
                "monocyte": "MO", "neutrophil": "SNE", "platelet": "PLATELET"}
    rng = np.random.default_rng(0)
    from PIL import Image

    for c, (folder, prefix) in enumerate(prefixes.items()):
        for i in range(per_class):
            base = np.array([30 * c % 255, 90 + 15 * c, 200 - 20 * c], dtype=float)
            pixels = np.clip(base + rng.normal(0, 40, (24, 24, 3)), 0, 255).astype(np.uint8)
            path = root / "PBC_dataset_normal_DIB" / folder / f"{prefix}_{1000 + i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path, quality=95)
    return root


def test_probe_result_file_is_complete_and_recomputable(tmp_path, cli):
    acevedo_tree(tmp_path / "data")
    out = tmp_path / "results"
    code, stdout, _ = cli("run", "--encoder", "handcrafted", "--task", "cell-probe", "--dataset", "acevedo",
                          "--data-root", tmp_path / "data", "--out", out, "--no-progress")
    assert code == 0 and "acevedo" in stdout and "computed" in stdout
    result = json.loads((out / "handcrafted" / "cell-probe" / "acevedo.json").read_text())
    jsonschema.validate(result, json.loads(SCHEMA_PATH.read_text()))
    assert result["split"]["name"] == "cv5" and len(result["metrics"]["probe/accuracy"]["values"]) == 5
    assert len(result["encoder"]["weights_sha256"]) == 64 and result["provenance"]["seeds"]["split"] == 0
    preds = result["predictions"]["probe"]
    true, pred = np.array(preds["true"]), np.array(preds["pred"])
    assert len(true) == 8 * 14  # every sample tested once over the 5 folds
    labels = result["labels"]
    assert result["confusion_matrix"]["counts"] == confusion_matrix(true, pred, labels=labels).tolist()
    folds = np.array(preds["fold"])
    per_fold = [balanced_accuracy_score(true[folds == f], pred[folds == f]) for f in result["split"]["folds"]]
    assert result["metrics"]["probe/balanced_accuracy"]["values"] == pytest.approx(per_fold)
    weighted = [f1_score(true[folds == f], pred[folds == f], average="weighted") for f in result["split"]["folds"]]
    assert result["metrics"]["probe/weighted_f1"]["mean"] == pytest.approx(np.mean(weighted))
    low, high = result["metrics"]["probe/balanced_accuracy"]["ci95"]
    assert low <= balanced_accuracy_score(true, pred) <= high


def test_probe_agrees_with_sklearn_on_exported_features(tmp_path, cli):
    """The DinoBloom reference protocol, run by hand on `hemabench extract --export` output.

    A neural baseline, since embeddings of real encoders are well scaled; on raw handcrafted
    features (scales differing by orders of magnitude) both solvers stop at max_iter and
    drift apart."""
    acevedo_tree(tmp_path / "data")
    out, export = tmp_path / "results", tmp_path / "acevedo.npz"
    assert cli("run", "--encoder", "resnet18-random", "--task", "cell-probe", "--dataset", "acevedo",
               "--data-root", tmp_path / "data", "--out", out, "--no-progress")[0] == 0
    code, stdout, _ = cli("extract", "--encoder", "resnet18-random", "--dataset", "acevedo", "--root", tmp_path / "data",
                          "--split", "cv5", "--export", export, "--no-progress")
    assert code == 0 and "(cache," in stdout  # the run already embedded it
    arrays = np.load(export)
    result = json.loads((out / "resnet18-random" / "cell-probe" / "acevedo.json").read_text())
    assert str(arrays["split_fingerprint"]) == result["split"]["fingerprint"]
    ours = dict(zip(result["predictions"]["probe"]["id"], result["predictions"]["probe"]["pred"]))
    X, y, parts = arrays["features"], arrays["labels"], arrays["split"]  # as exported (float16)
    agree = total = 0
    for fold in np.unique(parts):  # the reference protocol, written out independently
        train, test = parts != fold, parts == fold
        reference = LogisticRegression(C=X.shape[1] * 8 / 100, max_iter=1000).fit(X[train], y[train]).predict(X[test])
        agree += sum(ours[p] == r for p, r in zip(arrays["paths"][test], reference))
        total += test.sum()
    assert agree / total >= 0.99


def test_rerun_reuses_results_and_embeds_nothing(tmp_path, cli):
    acevedo_tree(tmp_path / "data")
    args = ["run", "--encoder", "handcrafted", "--dataset", "acevedo", "--task", "cell-probe", "--task", "cell-knn",
            "--data-root", tmp_path / "data", "--out", tmp_path / "results", "--no-progress"]
    assert cli(*args)[0] == 0
    code, stdout, _ = cli(*args)
    assert code == 0 and "0 images embedded" in stdout and stdout.count("reused") == 2 and "computed" not in stdout


def test_knn_result_has_both_k(tmp_path, cli):
    acevedo_tree(tmp_path / "data")
    assert cli("run", "--encoder", "handcrafted", "--task", "cell-knn", "--dataset", "acevedo", "--data-root",
               tmp_path / "data", "--out", tmp_path / "r", "--no-progress")[0] == 0
    result = json.loads((tmp_path / "r" / "handcrafted" / "cell-knn" / "acevedo.json").read_text())
    assert set(result["predictions"]) == {"k1", "k20"} and result["main_metric"] == "k20/balanced_accuracy"


def test_missing_weights_end_in_one_clear_message(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HEMABENCH_WEIGHTS", str(tmp_path / "weights"))
    acevedo_tree(tmp_path / "data")
    code, stdout, stderr = cli("run", "--encoder", "dinobloom-b", "--dataset", "acevedo", "--task", "cell-probe",
                               "--task", "cell-knn", "--data-root", tmp_path / "data", "--out", tmp_path / "r",
                               "--no-progress")
    assert code == 2 and "Traceback" not in stderr
    assert "skipped dinobloom-b on acevedo (cell-knn, cell-probe): weights missing" in stdout
    assert stderr.strip() == "hemabench: error: nothing was evaluated"


def test_full_suite_without_data_says_what_was_skipped(tmp_path, cli):
    code, stdout, stderr = cli("run", "--encoder", "handcrafted", "--data-root", tmp_path, "--out", tmp_path / "r",
                               "--no-progress")
    assert code == 2 and "skipped handcrafted on matek-bm" in stdout and "data not found" in stdout
    assert "try `hemabench run --suite demo`" in stderr


def test_list_commands(cli_json):
    assert {"cell-probe", "cell-knn"} <= {t["task"] for t in cli_json("list", "tasks")[1]["tasks"]}
    assert {"demo", "full"} <= {s["suite"] for s in cli_json("list", "suites")[1]["suites"]}
    encoders = {e["encoder"] for e in cli_json("list", "encoders")[1]["encoders"]}
    assert {"dinobloom-b", "handcrafted", "resnet18-random", "uni"} <= encoders


@pytest.mark.slow
def test_demo_end_to_end_then_cached(tmp_path):
    """The README's main command: the demo suite, then a re-run that embeds nothing."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "hemabench", "run", "--out", str(tmp_path / "results"), "--no-progress"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    from hemabench.pipeline.suites import load_suite

    demo = load_suite("demo")
    expected = sum(len(demo.plan(encoder=e)) for e in demo.encoders)
    rows = [line for line in first.stdout.splitlines() if "computed" in line]
    assert len(rows) == expected == 38  # 2 baselines x 17 task/dataset pairs, efficientnet-lite0 x 4 on acevedo-mini
    score = {(r.split()[0], r.split()[1], r.split()[2]): float(r.split()[4]) for r in rows}
    assert score[("handcrafted", "cell-probe", "synth-bm")] != score[("resnet18-random", "cell-probe", "synth-bm")]
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0 and "0 images embedded" in second.stdout and second.stdout.count("reused") == expected


@pytest.mark.slow
def test_extraction_killed_mid_way_resumes_to_identical_embeddings(tmp_path):
    """SIGKILL a real `hemabench extract` after its first chunk, resume, compare with a clean run."""
    from hemabench.datasets import DATASETS

    root = DATASETS.get("synth-bm").ensure()  # generated once in the session cache
    env = {**os.environ, "HEMABENCH_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "hemabench", "extract", "--encoder", "resnet18-random", "--dataset", "synth-bm",
               "--root", str(root), "--no-progress", "--workers", "0", "--batch-size", "16"]
    process = subprocess.Popen([*command, "--export", str(tmp_path / "killed.npz")], env=env)
    chunks = tmp_path / "cache" / "embeddings"
    deadline = time.time() + 300
    while not list(chunks.glob("*/chunks/chunk_000000.npz")) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed.npz").exists() and list(chunks.glob("*/chunks/chunk_000000.npz"))
    subprocess.run([*command, "--export", str(tmp_path / "resumed.npz")], env=env, check=True, timeout=600)
    clean_env = {**env, "HEMABENCH_CACHE": str(tmp_path / "clean-cache")}
    subprocess.run([*command, "--export", str(tmp_path / "clean.npz")], env=clean_env, check=True, timeout=600)
    resumed, clean = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "clean.npz")
    np.testing.assert_array_equal(resumed["features"], clean["features"])
    assert list(resumed["paths"]) == list(clean["paths"])


def test_cache_ls_and_rm_commands(tmp_path, cli, cli_json, monkeypatch):
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))
    acevedo_tree(tmp_path / "data", per_class=3)
    assert cli("extract", "--encoder", "handcrafted", "--dataset", "acevedo", "--root", tmp_path / "data",
               "--no-progress", "--pixel-cache")[0] == 0
    assert "pixel cache: " in cli("cache", "ls")[1] and list((tmp_path / "cache" / "pixels").rglob("*.npy"))
    assert cli("cache", "rm", "--pixels")[0] == 0 and not (tmp_path / "cache" / "pixels").exists()
    code, listing = cli_json("cache", "ls")
    (entry,) = listing["entries"]
    assert code == 0 and entry["encoder"] == "handcrafted" and entry["dataset"] == "acevedo" and entry["n"] == 24
    assert cli("cache", "rm")[0] == 2  # says what to remove rather than guessing
    code, out, _ = cli("cache", "rm", "--encoder", "handcrafted")
    assert code == 0 and "removed 1 entry" in out and cli_json("cache", "ls")[1]["entries"] == []
