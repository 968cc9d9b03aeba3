"""Regression tests for issue 23 items 11-13 and issue 30 items 5-7 and 9: hostile files and
options that crashed, hung or deleted a user's file now give one line (or are shown without
the bad part). Each failed before its fix."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest
import yaml
from conftest import REFERENCES, copy_reference_submission

from hemabench.compute.backends import CONNECT_TIMEOUT_S, check_address, fit_backend
from hemabench.errors import HemabenchError
from hemabench.submissions import validate_paths

RESULT = "results/cell-probe/synth-bm.json"


@pytest.fixture
def submission(tmp_path) -> Path:
    return copy_reference_submission(tmp_path, RESULT)


def one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def edit_yaml(path: Path, change) -> None:
    meta = yaml.safe_load(path.read_text())
    change(meta)
    path.write_text(yaml.safe_dump(meta))


# -- #23.11: a site build never removes through a link -------------------------------------------
def test_rebuild_never_deletes_through_a_linked_site_folder(tmp_path, cli):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    assert cli("leaderboard", "build", "--submissions", REFERENCES, "--out", site, "--no-figures")[0] == 0
    elsewhere.mkdir()
    (elsewhere / "important.txt").write_text("precious")
    manifest = site / ".hemabench-site.json"
    manifest.write_text(json.dumps({"files": ["tasks/important.txt", *json.loads(manifest.read_text())["files"]]}))
    for file in (site / "tasks").iterdir():
        file.unlink()
    (site / "tasks").rmdir()
    (site / "tasks").symlink_to(elsewhere)
    code, _, err = cli("leaderboard", "build", "--submissions", REFERENCES, "--out", site, "--no-figures")
    assert code == 2 and f"{site / 'tasks'} is a symbolic link" in one_line(err) and "nothing was changed" in err
    assert (elsewhere / "important.txt").read_text() == "precious" and sorted(os.listdir(elsewhere)) == ["important.txt"]


def test_manifest_entry_behind_a_nested_link_is_not_removed(tmp_path):
    from hemabench.leaderboard.manifest import _plain_inside

    (tmp_path / "tasks").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "tasks" / "sub").symlink_to(tmp_path / "elsewhere")
    assert not _plain_inside(tmp_path, "tasks/sub/important.txt")
    assert not _plain_inside(tmp_path, "tasks/../x") and _plain_inside(tmp_path, "tasks/page.html")


# -- #30.6: a malformed encoder_cost is left out; a failed build still writes its manifest -------
def test_non_numeric_gflops_is_left_out_of_the_site(submission, tmp_path, cli):
    result = json.loads((submission / RESULT).read_text())
    result["encoder_cost"]["gflops_per_image"] = "abc"
    (submission / RESULT).write_text(json.dumps(result))
    code, out, err = cli("leaderboard", "build", "--submissions", submission.parent, "--out", tmp_path / "site",
                         "--no-figures")
    assert code == 0, err
    assert "encoder_cost not shown (gflops_per_image: 'abc' is not of type 'number', 'null')" in out
    assert "abc" not in (tmp_path / "site" / "encoders" / "handcrafted.html").read_text()


def test_a_failed_build_leaves_a_manifest_of_what_it_wrote(tmp_path, monkeypatch, cli):
    from hemabench.leaderboard import build as build_module

    site = tmp_path / "site"

    def broken(*args, **kwargs):
        (site / "index.html").write_text("half")
        raise ValueError("Unknown format code 'f'")

    monkeypatch.setattr(build_module, "_write_site", broken)
    with pytest.raises(ValueError):
        build_module.build_site(site, REFERENCES, figures=False)
    assert json.loads((site / ".hemabench-site.json").read_text())["files"] == ["index.html"]
    monkeypatch.undo()
    assert cli("leaderboard", "build", "--submissions", REFERENCES, "--out", site, "--no-figures")[0] == 0
    assert (site / "index.html").read_text() != "half"


# -- #30.7: a FIFO named like a result file is refused, not read ---------------------------------
def test_fifo_result_file_is_refused_without_blocking(submission, tmp_path, cli):
    (submission / RESULT).unlink()
    os.mkfifo(submission / RESULT)
    done: list = []
    worker = threading.Thread(target=lambda: done.append([str(p) for p in validate_paths([str(submission)]).errors]),
                              daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # unblock the reader so the test run can end, then fail
        with open(submission / RESULT, "w"):
            pass
        pytest.fail("validate blocked on a FIFO")
    assert f"{submission}/{RESULT}: is not a regular file (a FIFO, device or socket); not read" in done[0]
    code, out, err = cli("leaderboard", "build", "--submissions", submission.parent, "--out", tmp_path / "site")
    assert code == 2 and "is not a regular file" in one_line(err)


# -- #30.5: check --reproduce on a file that is not a result --------------------------------------
@pytest.mark.parametrize("content", ['{"x": 1}', "[1, 2]"])
def test_reproduce_of_a_non_result_is_one_line(submission, cli, content):
    (submission / RESULT).write_text(content)
    code, _, err = cli("check", "--reproduce", submission)
    assert code == 2 and f"{submission / RESULT}: not a hemabench result" in one_line(err)


# -- #23.13: hostile encoder.yaml values ---------------------------------------------------------
@pytest.mark.parametrize("change, expected", [
    (lambda m: m.update(spec=["x"]), "spec: must be a mapping (the registered spec), not list"),
    (lambda m: m.update(submission="javascript:alert(1)"), "submission: must be a mapping of the submission fields, not str"),
    (lambda m: m["submission"].update(date="not-a-date"), "submission.date: 'not-a-date' is not a date (YYYY-MM-DD)"),
    (lambda m: m["submission"].update(code_url="javascript:alert(1)"),
     "submission.code_url: 'javascript:alert(1)' is not an http(s) address"),
])
def test_hostile_encoder_yaml_values_are_one_line_and_do_not_break_the_site(submission, tmp_path, cli, change,
                                                                           expected):
    edit_yaml(submission / "encoder.yaml", change)
    lines = [str(p) for p in validate_paths([str(submission)]).errors]
    assert f"{submission}/encoder.yaml: {expected}" in lines and all("\n" not in line for line in lines)
    code, _, err = cli("leaderboard", "build", "--submissions", submission.parent, "--out", tmp_path / "site",
                       "--no-figures")
    assert code == 0, err
    assert "javascript:" not in (tmp_path / "site" / "encoders" / "handcrafted.html").read_text().replace(
        "javascript:alert(1)</dd>", "")  # shown as text at most, never as a link
    assert 'href="javascript' not in (tmp_path / "site" / "encoders" / "handcrafted.html").read_text()


# -- #23.12: --backend-address -------------------------------------------------------------------
@pytest.mark.parametrize("address, message", [
    ("tcp://127.0.0.1:notaport", "port 'notaport' is not a number from 1 to 65535"),
    ("tcp://127.0.0.1:70000", "port '70000' is not a number from 1 to 65535"),
    ("foo://127.0.0.1:8786", "expected tcp://HOST:PORT"),
    ("", "expected tcp://HOST:PORT"),
    ("tcp://:8786", "expected tcp://HOST:PORT"),
])
def test_bad_backend_address_is_one_line(address, message):
    with pytest.raises(HemabenchError, match="--backend-address") as caught:
        check_address(address)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    pytest.importorskip("distributed")
    with pytest.raises(HemabenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        with fit_backend("dask", address):
            pass


def test_empty_backend_address_never_starts_a_local_cluster(monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "LocalCluster", lambda *a, **k: pytest.fail("a local cluster was started"))
    with pytest.raises(HemabenchError, match="expected tcp://HOST:PORT"):
        with fit_backend("dask", ""):
            pass
    with pytest.raises(HemabenchError, match="needs --backend dask"):
        with fit_backend("local", ""):
            pass


def test_refused_backend_address_fails_at_once_with_the_reason(monkeypatch):
    pytest.importorskip("distributed")
    import distributed

    monkeypatch.setattr(distributed, "Client", lambda *a, **k: pytest.fail("dask's client retried a refused address"))
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HemabenchError) as caught:
        with fit_backend("dask", f"tcp://127.0.0.1:{port}"):
            pass
    assert f"within {CONNECT_TIMEOUT_S} s: Connection refused" in str(caught.value)


# -- #30.9: published values outside their unit's range ------------------------------------------
REPORTED = """paper: x
citation: "Someone et al. A paper, 2024"
groups:
  - table: Table 1
    task: cell-knn
    dataset: acevedo
    unit: UNIT
    note: "a protocol note of some length"
    protocol: {versions: any, params: defaults, split: cv5, paper_split: own, differences: []}
    columns: [k1/balanced_accuracy]
    rows:
      resnet50: [CELL]
"""


@pytest.mark.parametrize("unit, cell, message", [
    ("percent", "500", "value 500 is outside [0, 100] for unit percent"),
    ("percent", "-20", "value -20 is outside [0, 100] for unit percent"),
    ("percent", "1.0e+300", "value 1e+300 is outside [0, 100] for unit percent"),
    ("percent", "[80, -5]", "sd -5 is outside [0, 100] for unit percent"),
    ("fraction", "85.0", "value 85.0 is outside [0, 1] for unit fraction (is the unit percent?)"),
    ("fraction", "[0.8, 2]", "sd 2 is outside [0, 1] for unit fraction"),
])
def test_reported_values_outside_their_range_are_refused(tmp_path, unit, cell, message):
    from hemabench.published.values import read_file

    path = tmp_path / "x.yaml"
    path.write_text(REPORTED.replace("UNIT", unit).replace("CELL", cell))
    with pytest.raises(HemabenchError) as caught:
        read_file(path)
    assert str(caught.value) == f"{path}: groups/0/rows/resnet50: k1/balanced_accuracy {message}"


def test_reported_values_at_the_ends_of_the_range_are_kept(tmp_path):
    from hemabench.published.values import read_file

    path = tmp_path / "x.yaml"
    path.write_text(REPORTED.replace("UNIT", "percent").replace("CELL", "[100, 0]"))
    assert [(r.value, r.sd) for r in read_file(path)] == [(1.0, 0.0)]
