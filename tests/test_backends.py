"""--backend dask: a task's independent fits on a dask cluster give the local run's numbers, bit for bit."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hemabench.compute.backends import fit_backend
from hemabench.errors import HemabenchError
from hemabench.pipeline.runner import RunOptions, run_plan

distributed = pytest.importorskip("distributed")  # in the test extra; hemabench[dask] for users

PLAN = [("label-efficiency", "synth-bm"), ("bm-to-blood", "synth-blood")]
FEW = {"label-efficiency": {"repetitions": 2}, "bm-to-blood": {"repetitions": 2}}


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 single-threaded worker processes, as a user's existing cluster."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


def _results(out) -> dict:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))}


def test_demo_sweeps_on_a_two_worker_cluster_equal_the_local_run(tmp_path, cluster):
    common = dict(device="cpu", progress=False, task_params=FEW)
    local = run_plan(["handcrafted"], PLAN, RunOptions(out=tmp_path / "local", **common))
    remote = run_plan(["handcrafted"], PLAN, RunOptions(out=tmp_path / "dask", backend="dask",
                                                        backend_address=cluster.scheduler_address, **common))
    assert [o.status for o in local.outcomes] == [o.status for o in remote.outcomes] == ["computed", "computed"]
    ours, theirs = _results(tmp_path / "local"), _results(tmp_path / "dask")
    assert sorted(ours) == sorted(theirs) == ["handcrafted/bm-to-blood/synth-blood.json",
                                              "handcrafted/label-efficiency/synth-bm.json"]
    for name in ours:
        # the stored confusion matrices (every fit's test predictions) and everything derived from them
        assert ours[name]["predictions"] == theirs[name]["predictions"], name
        assert ours[name]["metrics"] == theirs[name]["metrics"], name
        assert ours[name]["extra"]["repetition_sem"] == theirs[name]["extra"]["repetition_sem"], name
    assert len(cluster.workers) == 2


def test_the_sweep_jobs_really_run_on_the_workers(cluster):
    """Not a silent local fallback: the fits are tasks the scheduler saw."""
    from hemabench.protocols.fewshot import support_permutations, sweep

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)) + np.repeat(np.arange(3), 40)[:, None]
    y = np.repeat(["a", "b", "c"], 40)
    perms = support_permutations(np.arange(0, 120, 2), y, repetitions=4, seed=1)
    test = np.arange(1, 120, 2)
    local = sweep(X, y, perms, X[test], y[test], ["a", "b", "c"], n_grid=(2, 5), seed=1, n_jobs=1)
    with distributed.Client(cluster.scheduler_address) as client, distributed.get_task_stream(client) as stream:
        with fit_backend("dask", cluster.scheduler_address):
            remote = sweep(X, y, perms, X[test], y[test], ["a", "b", "c"], n_grid=(2, 5), seed=1)
    # one job per distinct support set (4 repetitions x 2 sizes); joblib may batch fast jobs into one
    # dask task ("batch_of__job_<calls>_calls-<hash>"), so count the calls the scheduler ran
    calls = [int(m.group(1)) if (m := re.search(r"_(\d+)_calls", str(t["key"]))) else 1 for t in stream.data]
    assert sum(calls) >= 8
    assert local["fits"] == remote["fits"] == 8 * 3
    for key, matrices in local["confusions"].items():
        np.testing.assert_array_equal(np.asarray(matrices), np.asarray(remote["confusions"][key]))


def test_bad_backend_settings_are_one_line_errors():
    with pytest.raises(HemabenchError, match="needs --backend dask"), fit_backend("local", "tcp://x:1"):
        pass
    with pytest.raises(HemabenchError, match="unknown backend 'spark'"), fit_backend("spark"):
        pass
    with pytest.raises(HemabenchError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"), \
            fit_backend("dask", "tcp://127.0.0.1:9"):
        pass
