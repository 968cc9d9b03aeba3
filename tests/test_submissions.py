"""Submissions: `submit` round trip, `validate` rejecting each kind of broken submission with one
clear line naming file and field, and `check` against a git base revision and on re-run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import copy_reference_submission

from hemabench.errors import HemabenchError
from hemabench.submissions import against_base, missing_references, rerun, submit, validate_paths

REFERENCES = Path(__file__).resolve().parents[1] / "submissions"
RESULT = "results/cell-probe/synth-bm.json"


@pytest.fixture
def submission(tmp_path) -> Path:
    """A copy of the handcrafted reference submission holding one small result."""
    return copy_reference_submission(tmp_path, RESULT)


def errors(path: Path) -> list[str]:
    return [str(p) for p in validate_paths([str(path)]).errors]


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_reference_submission_is_valid(submission):
    report = validate_paths([str(submission)])
    assert report.files == 1 and report.problems == []


def test_edited_number_is_rejected_with_the_recomputed_value(submission):
    def tamper(r):
        r["metrics"]["probe/balanced_accuracy"]["mean"] = 0.99
        r["per_class"]["BLA"]["sensitivity"] = 1.0
        r["confusion_matrix"]["counts"][0][0] += 1

    edit_json(submission / RESULT, tamper)
    lines = errors(submission)
    file = f"{submission}/{RESULT}"
    true = json.loads((REFERENCES / "handcrafted" / RESULT).read_text())
    assert f'{file}: metrics["probe/balanced_accuracy"].mean: stored 0.99 but the stored predictions give ' \
           f'{true["metrics"]["probe/balanced_accuracy"]["mean"]!r}' in lines
    assert any(line.startswith(f'{file}: per_class["BLA"].sensitivity: stored 1.0') for line in lines)
    assert any(line.startswith(f"{file}: confusion_matrix.counts[0] (true BAS): stored") for line in lines)
    assert len(lines) == 3


def test_wrong_split_hash_is_rejected(submission):
    edit_json(submission / RESULT, lambda r: r["split"].update(fingerprint="0" * 64))
    (line,) = errors(submission)
    assert line.startswith(f"{submission}/{RESULT}: split.fingerprint: {'0' * 64} does not match the registry's "
                           "synth-bm holdout-80-20 v1 (recomputed from the local dataset): 95e0ad")


def test_script_tag_in_model_name_is_rejected(submission):
    evil = "<script>alert(1)</script>"
    edit_yaml(submission / "encoder.yaml", lambda m: m.update(encoder=evil))
    edit_json(submission / RESULT, lambda r: r["encoder"].update(name=evil))
    lines = errors(submission)
    assert f"{submission}/encoder.yaml: encoder: {evil!r} is not a safe name (letters, digits, '.', '_', '-', " \
           "at most 64, no leading dot, no '..')" in lines
    assert any(line.startswith(f"{submission}/{RESULT}: encoder.name: {evil!r} is not a safe name") for line in lines)


def test_traversal_paths_links_and_stray_files_are_rejected(submission, tmp_path):
    def tamper(r):
        r["excluded"] = [{"path": "../../etc/passwd", "reason": "x"}]
        r["extra"]["attention"] = {"P1": {"cells": [{"path": "/etc/shadow", "score": 1}]}}

    edit_json(submission / RESULT, tamper)
    (tmp_path / "secret.json").write_text("{}")
    (submission / "results" / "cell-probe" / "synth-blood.json").symlink_to(tmp_path / "secret.json")
    (submission / "notes.txt").write_text("hi")
    lines = errors(submission)
    file = f"{submission}/{RESULT}"
    assert f"{file}: excluded[0].path: '../../etc/passwd' is not a plain relative path (no '..', no leading '/', " \
           "no '\\\\')" in lines
    assert any(line.startswith(f'{file}: extra.attention["P1"].cells[0].path: \'/etc/shadow\'') for line in lines)
    assert f"{submission}/results/cell-probe/synth-blood.json: is a symbolic link; links are not allowed in " \
           "submissions" in lines
    assert any(line.startswith(f"{submission}/notes.txt: unexpected file") for line in lines)
    with pytest.raises(HemabenchError, match="not a safe name"):
        submit("../evil", tmp_path, tmp_path / "out")


def test_missing_metadata_is_rejected(submission):
    edit_yaml(submission / "encoder.yaml", lambda m: m["submission"].update(not_trained_on_test_splits=False,
                                                                             statement="TODO", license=""))
    lines = errors(submission)
    where = f"{submission}/encoder.yaml"
    assert lines == [f"{where}: submission.license: is required (still empty or TODO)",
                     f"{where}: submission.statement: is required (still empty or TODO)",
                     f"{where}: submission.not_trained_on_test_splits: must be true: a statement that the encoder "
                     "never saw the test splits"]


def test_cli_exit_codes(submission, cli):
    code, out, _ = cli("validate", submission)
    assert code == 0 and "0 failure(s)" in out
    edit_json(submission / RESULT, lambda r: r["metrics"]["probe/accuracy"].update(std=0.5))
    code, out, _ = cli("validate", submission.parent)
    assert code == 1 and 'metrics["probe/accuracy"].std: stored 0.5' in out and "1 failure(s)" in out


def test_submit_copies_a_run_and_writes_metadata_to_fill_in(tmp_path, cli):
    run = tmp_path / "run" / "handcrafted" / "cell-probe"
    run.mkdir(parents=True)
    shutil.copy2(REFERENCES / "handcrafted" / RESULT, run / "synth-bm.json")
    code, out, _ = cli("submit", "--encoder", "handcrafted", "--results", tmp_path / "run",
                       "--submissions", tmp_path / "subs")
    folder = tmp_path / "subs" / "handcrafted"
    assert code == 0 and f"{folder}/encoder.yaml" in out
    assert json.loads((folder / RESULT).read_text()) == json.loads((run / "synth-bm.json").read_text())
    meta = yaml.safe_load((folder / "encoder.yaml").read_text())
    assert meta["spec"]["name"] == "handcrafted" and meta["submission"]["license"] == "Apache-2.0"
    lines = errors(folder)
    assert {line.split(": ")[1] for line in lines} == {"submission.submitted_by", "submission.statement",
                                                       "submission.not_trained_on_test_splits"}
    assert cli("submit", "--encoder", "handcrafted", "--results", tmp_path / "run", "--submissions",
               tmp_path / "subs")[0] == 2  # exists; --overwrite needed


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def test_check_against_base_catches_silent_changes_and_removals(submission, tmp_path):
    root = tmp_path
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "references")
    subs, path = root / "submissions", submission / RESULT
    assert against_base("HEAD", subs).problems == []
    edit_json(path, lambda r: r["metrics"]["probe/balanced_accuracy"].update(mean=0.5))
    (problem,) = against_base("HEAD", subs).problems
    assert str(problem).startswith('submissions/handcrafted/results/cell-probe/synth-bm.json: '
                                   'metrics["probe/balanced_accuracy"].mean: changed 0.7853 -> 0.5000 since HEAD '
                                   'without a task version change')
    edit_json(path, lambda r: r.update(task_version=r["task_version"] + 1))
    assert against_base("HEAD", subs).problems == []  # the protocol changed with it
    path.unlink()
    (problem,) = against_base("HEAD", subs).problems
    assert "was committed at HEAD and has been removed" in str(problem)


def test_committed_references_cover_the_demo_suite_and_stay_small():
    assert missing_references(REFERENCES) == []
    size = sum(p.stat().st_size for p in REFERENCES.rglob("*.json"))
    # 32 results, about 8.9 MB: the BreakHis limited-label and cross-magnification files keep per-sample
    # predictions and class probabilities for 35 and 18 variants, and their temperature slices (1.8 and
    # 0.8 MB each). A tripwire, not a target.
    assert size < 10_000_000, f"reference results grew to {size} bytes"


@pytest.mark.slow
def test_every_probabilistic_reference_variant_has_its_temperature_scaled_calibration():
    """Issue 17: raw and temperature-scaled ECE on every board with probabilities; a slice left
    empty (a support set using every training cell) would leave the scaled column blank."""
    from hemabench.results import Result

    paths = sorted(REFERENCES.glob("*/results/*/*.json"))
    assert len(paths) >= 30, f"{REFERENCES}: only {len(paths)} reference results found"  # an empty glob must not pass
    for path in paths:
        result = Result.load(path)
        with_proba = [v for v, p in result.predictions.items() if "proba" in p]
        # kNN votes and the robustness task's perturbed-cell predictions carry no probabilities
        assert with_proba or result.task in ("cell-knn", "robustness"), f"{path}: no variant with probabilities"
        for variant in with_proba:
            for name in ("ece", "ece_ts", "brier", "brier_ts", "nll_ts", "aurc"):
                assert f"{variant}/{name}" in result.metrics, f"{path}: {variant}/{name} missing"


def test_check_rerun_detects_a_moved_main_score(tmp_path):
    folder = tmp_path / "handcrafted" / "results" / "cell-knn"
    folder.mkdir(parents=True)
    shutil.copy2(REFERENCES / "handcrafted" / "results/cell-knn/synth-bm.json", folder)
    assert rerun(tmp_path).problems == []
    edit_json(folder / "synth-bm.json", lambda r: r["metrics"]["k20/balanced_accuracy"].update(mean=0.9))
    (problem,) = rerun(tmp_path).problems
    assert 'metrics["k20/balanced_accuracy"].mean: moved 0.9000 -> 0.5345 on re-run' in str(problem)
