"""Shared test setup: a private cache folder so tests never touch the user's cache."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import hemabench  # noqa: F401  (first: it pins CPU math before numpy, OpenBLAS and torch load)

sys.path.insert(0, str(Path(__file__).parent))  # the fixture-tree builders in tests/trees.py

# One cache for the whole session, so the synthetic demo is generated once per test run.
os.environ.setdefault("HEMABENCH_CACHE", tempfile.mkdtemp(prefix="hemabench-test-cache-"))
os.environ.pop("HEMABENCH_DATA", None)


REFERENCES = Path(__file__).resolve().parents[1] / "submissions"


def copy_reference_submission(tmp_path: Path, result: str) -> Path:
    """A copy of the handcrafted reference submission holding one of its results (``results/<task>/<file>``)."""
    folder = tmp_path / "submissions" / "handcrafted"
    (folder / Path(result).parent).mkdir(parents=True)
    shutil.copy2(REFERENCES / "handcrafted" / "encoder.yaml", folder)
    shutil.copy2(REFERENCES / "handcrafted" / result, folder / result)
    return folder


@pytest.fixture
def hermetic(monkeypatch, tmp_path):
    """An empty weights folder and Hugging Face cache, and no downloads."""
    monkeypatch.setenv("HEMABENCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from hemabench.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def cli_json(cli):
    def run(*args: str):
        code, out, err = cli(*args, "--json")
        return code, json.loads(out)

    return run
