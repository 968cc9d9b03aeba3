"""Where hemabench keeps generated data and caches, and where its benchmark files are."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``HEMABENCH_CACHE`` if set, else the user cache folder (never inside the repo)."""
    env = os.environ.get("HEMABENCH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hemabench"


def benchmarks_dir() -> Path:
    """The task, suite and split definitions: the repo's ``benchmarks/`` or the installed copy."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "benchmarks", package / "_benchmarks"):
        if (candidate / "splits.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"hemabench's benchmarks/ folder is missing (looked beside {package})")
