"""Regression tests for the defects of issue 14, section 3: hostile submission files, a site build
that deleted a user's files, crashing file names, typos, bad options and cache pruning. Each
failed (crash, traceback, silent loss) before its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trees
from conftest import copy_reference_submission

from hemabench.submissions import validate_paths

REFERENCES = Path(__file__).resolve().parents[1] / "submissions"
RESULT = "results/cell-probe/synth-bm.json"
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.fixture
def submission(tmp_path) -> Path:
    return copy_reference_submission(tmp_path, RESULT)


def one_line_errors(path: Path) -> list[str]:
    lines = [str(p) for p in validate_paths([str(path)]).errors]
    assert all("\n" not in line and "Traceback" not in line for line in lines)
    return lines


# -- hostile submission files ------------------------------------------------------------------
def test_billion_laughs_encoder_yaml_is_refused_before_expansion(submission, cli, tmp_path):
    (submission / "encoder.yaml").write_text(BILLION_LAUGHS)
    lines = one_line_errors(submission)
    assert f"{submission}/encoder.yaml: line 1: YAML anchors and aliases (&, *) are not allowed here" in lines
    code, out, err = cli("leaderboard", "build", "--submissions", submission.parent, "--out", tmp_path / "site",
                         "--no-figures")
    assert code == 0 and "YAML anchors and aliases (&, *) are not allowed here; encoder metadata not shown" in out


def test_deep_json_is_a_one_line_rejection(submission, cli, tmp_path):
    (submission / RESULT).write_text("[" * 200_000 + "]" * 200_000)
    file = f"{submission}/{RESULT}"
    assert f"{file}: JSON nested 200000 levels deep (at most 64 allowed)" in one_line_errors(submission)
    code, out, err = cli("leaderboard", "build", "--submissions", submission.parent, "--out", tmp_path / "site")
    assert code == 2 and len(err.splitlines()) == 1 and f"{file}: JSON nested 200000 levels deep" in err


def test_non_utf8_encoder_yaml_is_a_one_line_rejection(submission, cli, tmp_path):
    (submission / "encoder.yaml").write_bytes(b"encoder: handcrafted\nnote: caf\xe9\n")
    assert f"{submission}/encoder.yaml: is not UTF-8 text (byte 0xe9 at offset 30)" in one_line_errors(submission)
    code, out, _ = cli("leaderboard", "build", "--submissions", submission.parent, "--out", tmp_path / "site",
                       "--no-figures")
    assert code == 0 and "encoder.yaml: is not UTF-8 text" in out


def test_nan_prediction_is_rejected_with_the_reason(submission):
    data = json.loads((submission / RESULT).read_text())
    data["predictions"]["probe"]["pred"][3] = float("nan")
    (submission / RESULT).write_text(json.dumps(data))
    assert f"{submission}/{RESULT}: predictions/probe/pred/3: schema: nan is not of type 'string'" \
        in one_line_errors(submission)


def test_long_schema_messages_keep_their_reason(submission):
    data = json.loads((submission / RESULT).read_text())
    data["task"] = ["x" * 50] * 20  # a long offending value: the reason comes after it
    (submission / RESULT).write_text(json.dumps(data))
    lines = one_line_errors(submission)
    assert any(": task: schema: [" in line and line.endswith("is not of type 'string'") for line in lines), lines


# -- the site build never deletes a user's files ----------------------------------------------
def test_leaderboard_build_refuses_a_folder_with_user_files(tmp_path, cli):
    mine = tmp_path / "work"
    (mine / "figures").mkdir(parents=True)
    (mine / "figures" / "my-plot.svg").write_text("<svg/>")
    (mine / "index.html").write_text("my page")
    code, out, err = cli("leaderboard", "build", "--submissions", REFERENCES, "--out", mine, "--no-figures")
    assert code == 2 and "that no leaderboard build wrote" in err and "nothing was changed" in err
    assert (mine / "figures" / "my-plot.svg").read_text() == "<svg/>" and (mine / "index.html").read_text() == "my page"


def test_leaderboard_rebuild_removes_only_what_it_wrote(tmp_path, cli):
    site = tmp_path / "site"
    assert cli("leaderboard", "build", "--submissions", REFERENCES, "--out", site, "--no-figures")[0] == 0
    manifest = json.loads((site / ".hemabench-site.json").read_text())["files"]
    assert "index.html" in manifest and all((site / f).is_file() for f in manifest)
    (site / "tasks" / "my-notes.txt").write_text("keep me")  # a user's file inside a site folder
    (site / "README.md").write_text("mine")
    stale = site / next(f for f in reversed(manifest) if f.endswith(".html"))
    stale.write_text("stale page")
    assert cli("leaderboard", "build", "--submissions", REFERENCES, "--out", site, "--no-figures")[0] == 0
    assert (site / "tasks" / "my-notes.txt").read_text() == "keep me" and (site / "README.md").read_text() == "mine"
    assert "tasks/my-notes.txt" not in json.loads((site / ".hemabench-site.json").read_text())["files"]
    assert stale.read_text() != "stale page"


# -- options, typos, OS errors -----------------------------------------------------------------
def test_bad_option_messages(capsys):
    from hemabench.cli import main

    for args, message in ((["run", "--workers", "-3"], "expected a number of DataLoader workers >= 0, got '-3'"),
                          (["run", "--device", "tpu"], "expected auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
                          (["extract", "--encoder", "handcrafted", "--dataset", "synth-bm", "--export", "."],
                           ". exists and is not a saved dataset"),
                          (["extract", "--encoder", "handcrafted", "--dataset", "synth-bm", "--export", "/tmp/"],
                           "/tmp/ exists and is not a saved dataset")):
        with pytest.raises(SystemExit):
            main(args)
        assert message in capsys.readouterr().err


def test_out_at_a_file_is_one_line(cli, tmp_path, capsys):
    from hemabench.cli import main

    target = tmp_path / "a-file"
    target.write_text("x")
    for command in (["run"], ["leaderboard", "build"]):
        with pytest.raises(SystemExit):
            main([*command, "--out", str(target)])
        assert f"{target} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_out_folder_is_one_line_naming_the_path(cli, tmp_path):
    site = tmp_path / "ro"
    site.mkdir()
    site.chmod(0o500)
    try:
        code, _, err = cli("leaderboard", "build", "--submissions", REFERENCES, "--out", site, "--no-figures")
    finally:
        site.chmod(0o700)
    assert code == 2 and err.startswith("hemabench: error: ") and str(site) in err and len(err.splitlines()) == 1


def test_os_error_becomes_one_line_naming_the_path(cli, monkeypatch, tmp_path):
    from hemabench.leaderboard import manifest

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "site" / ".hemabench-site.json"))

    monkeypatch.setattr(manifest, "atomic_write_text", refuse)
    code, _, err = cli("leaderboard", "build", "--submissions", REFERENCES, "--out", tmp_path / "site", "--no-figures")
    assert code == 2 and err == f"hemabench: error: {tmp_path / 'site' / '.hemabench-site.json'}: Permission denied\n"


@pytest.mark.parametrize("args, message", [
    (["run", "--encoder", "dinoblom-b"], "unknown encoder 'dinoblom-b'; did you mean 'dinobloom-b'? registered:"),
    (["run", "--task", "cell-prob"], "unknown task 'cell-prob'; did you mean 'cell-probe'? registered:"),
    (["run", "--dataset", "synth-bn"], "unknown dataset 'synth-bn'; did you mean 'synth-bm'? registered:"),
    (["extract", "--encoder", "resnet18-randon", "--dataset", "synth-bm"], "did you mean 'resnet18-random'?"),
])
def test_typos_are_named_with_the_closest_registered_name(cli, args, message, tmp_path):
    code, out, err = cli(*args, "--out", tmp_path) if args[0] == "run" else cli(*args)
    assert code == 2 and message in err and "no data found" not in err + out and len(err.splitlines()) == 1


# -- cache pruning -----------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["", "ab"])
def test_cache_rm_refuses_empty_or_short_prefixes(cli, tmp_path, monkeypatch, prefix):
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path))
    entry = tmp_path / "embeddings" / ("ab" * 16)
    entry.mkdir(parents=True)
    (entry / "meta.json").write_text("{}")
    code, _, err = cli("cache", "rm", prefix)
    assert code == 2 and f"cache key prefix {prefix!r} is too short" in err and entry.is_dir()


# -- file names the file system allows but UTF-8 does not --------------------------------------
def _bad_tree(root: Path) -> Path:
    trees.matek_bm(root)
    folder = root / "Bone_Marrow_Cytomorphology" / "ART"
    folder = next(p for p in (root.rglob("ART")) if p.is_dir()) if not folder.is_dir() else folder
    trees.write_image(Path(os.fsdecode(bytes(folder) + b"/ART_\xff\xfe.jpg")), "JPEG")
    return root


def test_non_utf8_file_name_is_skipped_and_listed_escaped(tmp_path, cli):
    root = _bad_tree(tmp_path)
    code, out, err = cli("data", "verify", "matek-bm", "--root", root)
    assert code == 0 and "Traceback" not in err
    assert "ART_\\xff\\xfe.jpg" in out and "file name is not valid UTF-8" in out


def test_extract_reports_skipped_files(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))
    root = _bad_tree(tmp_path / "data")
    code, out, err = cli("extract", "--encoder", "handcrafted", "--dataset", "matek-bm", "--root", root,
                         "--device", "cpu", "--workers", "0", "--no-progress")
    assert code == 0, err
    assert "ART_\\xff\\xfe.jpg: file name is not valid UTF-8" in out
    assert "truncated JPEG" in out and "file(s) skipped:" in out and "(again: `hemabench data verify matek-bm --root " in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable folders")
def test_unreadable_class_folder_is_listed(tmp_path, cli_json):
    trees.matek_bm(tmp_path)
    folder = next(p for p in tmp_path.rglob("ART") if p.is_dir())
    folder.chmod(0)
    try:
        code, report = cli_json("data", "verify", "matek-bm", "--root", tmp_path)
    finally:
        folder.chmod(0o700)
    assert any(s["reason"].startswith("folder cannot be read") and s["path"].endswith("ART")
               for s in report["skipped"])


def test_unreadable_folder_is_listed_via_walk_errors(tmp_path, monkeypatch, cli_json):
    """The same as above where tests run as root: the walk's error callback gets the folder."""
    from hemabench.datasets import base

    trees.matek_bm(tmp_path)
    real_walk = os.walk

    def walk(top, onerror=None, **kwargs):
        for dirpath, dirnames, filenames in real_walk(top, onerror=onerror, **kwargs):
            if Path(dirpath).name == "ART":
                onerror(PermissionError(13, "Permission denied", dirpath))
                dirnames[:] = []
                continue
            yield dirpath, dirnames, filenames

    monkeypatch.setattr(base.os, "walk", walk)
    code, report = cli_json("data", "verify", "matek-bm", "--root", tmp_path)
    listed = [s for s in report["skipped"] if s["reason"] == "folder cannot be read (Permission denied)"]
    assert len(listed) == 1 and listed[0]["path"].endswith("ART") and "ART" not in report["classes"]
