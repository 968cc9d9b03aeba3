"""torchrun: two CPU processes (gloo) share an extraction and give the embeddings of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hemabench.embeddings.cache import CHUNK_SIZE


@pytest.fixture(scope="module")
def synth_bm():
    from hemabench.datasets import DATASETS

    return DATASETS.get("synth-bm").ensure()  # generated once in the session cache


def hemabench(args: list[str], cache, ranks: int = 1, **kwargs) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"] \
        if ranks > 1 else [sys.executable]
    env = {**os.environ, "HEMABENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "hemabench", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def test_two_ranks_embed_what_one_process_does(tmp_path, synth_bm):
    common = ["extract", "--encoder", "handcrafted", "--dataset", "synth-bm", "--root", synth_bm, "--workers", "0",
              "--no-progress"]
    one = hemabench([*common, "--export", tmp_path / "one.npz"], tmp_path / "cache-one")
    two = hemabench([*common, "--export", tmp_path / "two.npz"], tmp_path / "cache-two", ranks=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "660 images embedded by 2 ranks on cpu" in two.stdout
    assert two.stdout.count("exported") == 1  # rank 0 alone reports and exports
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert len(a["paths"]) > 2 * CHUNK_SIZE  # three chunks: rank 0 gets two, rank 1 one
    np.testing.assert_array_equal(a["features"], b["features"])
    assert list(a["paths"]) == list(b["paths"])
    (entry,) = (tmp_path / "cache-two" / "embeddings").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["features.npy", "index.json", "meta.json"]  # assembled


@pytest.mark.slow
def test_run_under_torchrun_writes_the_results_of_a_single_process(tmp_path, synth_bm):
    common = ["run", "--encoder", "handcrafted", "--suite", "demo", "--task", "cell-knn", "--dataset", "synth-bm",
              "--no-progress", "--workers", "0"]
    one = hemabench([*common, "--out", tmp_path / "one"], tmp_path / "cache-one")
    two = hemabench([*common, "--out", tmp_path / "two"], tmp_path / "cache-two", ranks=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("1 result(s)") == 1  # rank 1 prints no summary
    (path,) = (tmp_path / "one").rglob("*.json")
    first, second = (json.loads(p.read_text()) for p in (path, tmp_path / "two" / path.relative_to(tmp_path / "one")))
    assert first["metrics"] == second["metrics"] and first["predictions"] == second["predictions"]
