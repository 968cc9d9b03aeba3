"""`hemabench sweep`: one job per encoder through submitit (local executor: real subprocesses)."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
import submitit

from hemabench.pipeline.runner import RunOptions, run_plan
from hemabench.pipeline.sweep import (
    SweepFailed,
    SweepOptions,
    _export_distributed,
    executor_parameters,
    parse_slurm_params,
    resolve_encoders,
    submit,
    wait,
)

PLAN = [("cell-knn", "acevedo")]
PAIR = ["--task", "cell-knn", "--dataset", "acevedo", "--device", "cpu"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A small Acevedo tree (8 classes x 14 images, class-dependent colours): quick to embed."""
    from test_run import acevedo_tree

    return acevedo_tree(tmp_path_factory.mktemp("data"))


def _result(out: Path, encoder: str, dataset: str = "acevedo") -> dict:
    return json.loads((out / encoder / "cell-knn" / f"{dataset}.json").read_text())


def test_local_jobs_match_an_independent_in_process_run_and_a_failed_job_is_named(tmp_path, monkeypatch, data_root):
    out = tmp_path / "sweep"
    jobs = submit(["handcrafted", "resnet18-random", "no-such-encoder"], PLAN,
                  RunOptions(out=out, device="cpu", data_root=str(data_root)),
                  SweepOptions(executor="local", log_dir=tmp_path / "logs", timeout_min=10))
    assert [j.encoder for j in jobs] == ["handcrafted", "resnet18-random", "no-such-encoder"]
    with pytest.raises(SweepFailed) as failed:
        wait(jobs)
    message = str(failed.value)
    assert message.startswith("1 of 3 sweep job(s) failed")
    assert "(encoder no-such-encoder)" in message and "unknown encoder 'no-such-encoder'" in message
    assert str(jobs[2].job.paths.stderr) in message and jobs[2].job.paths.stderr.is_file()
    report = failed.value.report  # the other jobs are still reported
    assert sorted((o.encoder, o.status) for o in report.outcomes) == [("handcrafted", "computed"),
                                                                      ("resnet18-random", "computed")]

    # The same plan in this process, with its own embedding cache: an independent computation.
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))
    direct = run_plan(["handcrafted", "resnet18-random"], PLAN, RunOptions(out=tmp_path / "direct", device="cpu",
                                                                           data_root=str(data_root), progress=False))
    assert direct.images_forwarded == 2 * 8 * 14
    assert all(o.status == "computed" for o in direct.outcomes)
    for outcome in report.outcomes:
        ours, theirs = _result(out, outcome.encoder), _result(tmp_path / "direct", outcome.encoder)
        metric = ours["main_metric"]
        assert ours["metrics"][metric]["values"] == pytest.approx(theirs["metrics"][metric]["values"])
        assert outcome.result.main.mean == pytest.approx(theirs["metrics"][metric]["mean"])
        assert ours["predictions"] == theirs["predictions"]
        assert ours["split"]["fingerprint"] == theirs["split"]["fingerprint"]


def test_cli_local_wait_prints_the_summary_table(tmp_path, cli, data_root):
    out = tmp_path / "results"
    code, stdout, _ = cli("sweep", "--executor", "local", "--wait", "--encoder", "handcrafted", *PAIR, "--out", out,
                          "--data-root", data_root)
    assert code == 0, stdout
    assert "1 job(s) submitted (local executor)" in stdout
    assert "handcrafted" in stdout and "k20/balanced_accuracy" in stdout and "1 result(s), 0 skipped" in stdout
    assert _result(out, "handcrafted")["encoder"]["name"] == "handcrafted"
    assert list((out / "sweep-logs").glob("*/*_0_log.out"))  # logs under <out>/sweep-logs/<job id>/
    (err_log,) = (out / "sweep-logs").glob("*/*_0_log.err")  # progress bars land in the job's stderr log
    assert "cell-knn acevedo: 100%" in err_log.read_text() and "5/5" in err_log.read_text()


def test_cli_missing_data_is_a_skipped_reason_and_bad_input_one_line(tmp_path, cli, monkeypatch):
    code, stdout, err = cli("sweep", "--executor", "debug", "--encoder", "handcrafted", "--suite", "full", *PAIR,
                            "--data-root", tmp_path / "nothing", "--out", tmp_path / "out")
    assert code == 2 and "skipped handcrafted on acevedo (cell-knn): data not found" in stdout
    assert err.startswith("hemabench: error: nothing was evaluated (no data found")

    code, _, err = cli("sweep", "--executor", "local", "--encoder", "nope", *PAIR, "--out", tmp_path / "o2")
    assert code == 2 and "unknown encoder 'nope'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o2").exists()  # refused before anything was queued
    code, _, err = cli("sweep", "--executor", "local", "--suite", "full")
    assert code == 2 and "names no encoders" in err

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code, _, err = cli("sweep", "--encoder", "handcrafted", *PAIR)
    assert code == 2 and "sbatch not found" in err and "--executor local" in err
    code, _, err = cli("sweep", "--executor", "slurm", "--encoder", "handcrafted", *PAIR)
    assert code == 2 and "sbatch and srun not found" in err and len(err.splitlines()) == 1


def test_slurm_parameters_reach_the_sbatch_script(tmp_path, cli, monkeypatch):
    """sbatch and srun are stand-ins: sbatch keeps the script it is given and answers a job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", 'cp "$1" "$(dirname "$0")/submitted.sh"\necho "Submitted batch job 4242"\n'),
                       ("srun", "exit 1\n")):
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "results"
    code, stdout, _ = cli("sweep", "--encoder", "handcrafted", "--encoder", "resnet18-random", *PAIR, "--out", out,
                          "--partition", "gpu", "--gpus-per-node", "2", "--tasks-per-node", "2", "--cpus-per-task",
                          "8", "--mem-gb", "32", "--timeout-min", "90", "--array-parallelism", "1",
                          "--slurm-param", "qos=high", "--slurm-param=--account=proj", "--slurm-param", "exclusive",
                          "--quiet")
    assert code == 0
    assert "4242_0" in stdout and "4242_1" in stdout and "squeue -j 4242" in stdout
    assert f"hemabench leaderboard build --results {out}" in stdout
    script = (bin_dir / "submitted.sh").read_text().splitlines()
    for line in ("--partition=gpu", "--gpus-per-node=2", "--ntasks-per-node=2", "--cpus-per-task=8", "--mem=32GB",
                 "--time=90", "--array=0-1%1", "--qos=high", "--account=proj", "--exclusive", "--job-name=hemabench",
                 f"--output={out.absolute()}/sweep-logs/%A_%a/%A_%a_0_log.out"):
        assert f"#SBATCH {line}" in script
    submitted = submitit.core.utils.DelayedSubmission.load(out / "sweep-logs" / "4242_1" / "4242_1_submitted.pkl")
    encoder, plan, options = submitted.args
    assert encoder == "resnet18-random" and plan == PLAN
    assert options.out == out.absolute() and options.progress is False and options.device == "cpu"

    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n")
    code, _, err = cli("sweep", "--encoder", "handcrafted", *PAIR, "--out", out, "--partition", "nope")
    assert code == 2 and "hemabench: error: submitting the sweep with the slurm executor failed: sbatch: error: " \
                         "invalid partition specified: nope" in err


def test_parameter_mapping_and_names():
    assert parse_slurm_params(["qos=high", "--account=a=b", "exclusive"]) == {"qos": "high", "account": "a=b",
                                                                               "exclusive": True}
    with pytest.raises(Exception, match="KEY=VALUE"):
        parse_slurm_params(["=x"])
    params = executor_parameters(SweepOptions(executor="slurm", partition="p", mem_gb=4, slurm_params={"qos": "q"}))
    assert params == {"name": "hemabench", "timeout_min": 720, "tasks_per_node": 1, "mem_gb": 4,
                      "slurm_partition": "p", "slurm_additional_parameters": {"qos": "q"}}
    assert "local_setup" in executor_parameters(SweepOptions(executor="local"))  # GPUs seen here stay visible
    assert "local_setup" not in executor_parameters(SweepOptions(executor="local", gpus_per_node=1))
    assert resolve_encoders(["handcrafted", "resnet18-random", "handcrafted"]) == ["handcrafted", "resnet18-random"]


def test_tasks_of_one_job_get_torchrun_variables(monkeypatch):
    fake = {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "77", "SUBMITIT_LOCAL_NTASKS": "2",
            "SUBMITIT_LOCAL_JOB_NUM_NODES": "1", "SUBMITIT_LOCAL_NODEID": "0", "SUBMITIT_LOCAL_GLOBALID": "1",
            "SUBMITIT_LOCAL_LOCALID": "1"}
    environ = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    monkeypatch.setattr(os, "environ", {**environ, **fake})
    assert _export_distributed() == 1
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("1", "2", "1")
    assert os.environ["MASTER_ADDR"] and int(os.environ["MASTER_PORT"]) > 0
    monkeypatch.setattr(os, "environ", environ)
    assert _export_distributed() == 0  # outside a job: nothing to export


@pytest.mark.slow
def test_demo_jobs_on_a_fresh_cache_share_one_generated_dataset(tmp_path, monkeypatch):
    """Two jobs start together on an empty cache: both need synth-bm, and one copy results."""
    from hemabench.datasets import DATASETS

    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))  # the jobs inherit it
    out = tmp_path / "out"
    jobs = submit(["handcrafted", "resnet18-random"], [("cell-knn", "synth-bm")], RunOptions(out=out, device="cpu"),
                  SweepOptions(executor="local", log_dir=tmp_path / "logs", timeout_min=20))
    report = wait(jobs)
    assert [o.status for o in report.outcomes] == ["computed", "computed"]
    generated = [p.name for p in (tmp_path / "cache" / "synthetic").iterdir()]
    assert generated == [DATASETS.get("synth-bm").generated_folder().name]  # no staging copy left over
    fingerprints = {_result(out, e, "synth-bm")["split"]["fingerprint"] for e in ("handcrafted", "resnet18-random")}
    assert len(fingerprints) == 1


@pytest.mark.slow
def test_two_tasks_per_job_share_the_extraction_and_rank_0_reports(tmp_path, monkeypatch, data_root):
    options = RunOptions(out=tmp_path / "ranks", device="cpu", data_root=str(data_root))
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache-ranks"))  # the job inherits it: embeds afresh
    jobs = submit(["handcrafted"], PLAN, options, SweepOptions(executor="local", tasks_per_node=2,
                                                                log_dir=tmp_path / "logs", timeout_min=10))
    report = wait(jobs)
    ranks = jobs[0].job.results()
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[1]["outcomes"] == []  # rank 1 only helped embed
    assert [o.status for o in report.outcomes] == ["computed"] and report.images_forwarded == 8 * 14
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache-one"))
    run_plan(["handcrafted"], PLAN, RunOptions(out=tmp_path / "one", device="cpu", data_root=str(data_root),
                                               progress=False))
    assert _result(tmp_path / "ranks", "handcrafted")["predictions"] == _result(tmp_path / "one", "handcrafted")[
        "predictions"]


def test_processes_racing_to_generate_a_dataset_all_use_one_copy(tmp_path, monkeypatch):
    """Both generate into their own staging folder; the second rename fails on the first's copy,
    and the loser then reads the winner's folder and leaves no staging folder behind."""
    from hemabench import synthetic
    from hemabench.datasets import DATASETS

    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path))
    both_generated = threading.Barrier(2, timeout=30)

    def generate(name, out, size, seed):
        (Path(out) / "cls").mkdir(parents=True)
        (Path(out) / "cls" / "writer.txt").write_text(threading.current_thread().name)
        both_generated.wait()  # neither renames before both have a complete copy

    monkeypatch.setattr(synthetic, "generate", generate)
    spec = DATASETS.get("synth-bm")
    found, errors = {}, []

    def ensure(name):
        try:
            found[name] = spec.ensure()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ensure, args=(n,), name=n) for n in ("job-a", "job-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and found["job-a"] == found["job-b"] == spec.generated_folder()
    target = found["job-a"]
    assert (target / "cls" / "writer.txt").read_text() in ("job-a", "job-b")
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # the loser's staging copy is gone
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~_current_umask()  # not mkdtemp's 0o700


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
