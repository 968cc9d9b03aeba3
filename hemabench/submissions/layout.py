"""Where a submission's files live, which names and sizes are allowed, and how results are written.

    submissions/<encoder>/encoder.yaml                   spec + submission metadata
    submissions/<encoder>/README.md                      optional notes
    submissions/<encoder>/results/<task>/<dataset>.json  one result per task and dataset

Names are plain (letters, digits, ``.``, ``_``, ``-``; no leading dot, at most 64
characters), nothing may be a link, and files have size limits, so a pull request can
neither escape the folder nor smuggle markup into file names or pages.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ENCODER_FILE = "encoder.yaml"
README = "README.md"
RESULTS = "results"
MAX_RESULT_BYTES = 50 * 2**20  # a full-size matek-bm probe result with per-sample predictions is ~6 MB
MAX_TEXT_BYTES = 256 * 2**10  # encoder.yaml, README.md


@dataclass(frozen=True)
class Problem:
    """One failure (or warning): the file, the field in it, and what is wrong."""

    path: str
    field: str
    message: str
    level: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.level == "warning" else ""
        return f"{prefix}{self.path}: {self.field}: {self.message}" if self.field else f"{prefix}{self.path}: {self.message}"


def safe_name(name) -> bool:
    return isinstance(name, str) and bool(SAFE_NAME.match(name)) and ".." not in name


def name_problem(path: str, field: str, name) -> Problem | None:
    if safe_name(name):
        return None
    return Problem(path, field, f"{name!r} is not a safe name (letters, digits, '.', '_', '-', at most 64, "
                                "no leading dot, no '..')")


def safe_relative(path) -> bool:
    """A plain relative POSIX path (record ids, attention cells, excluded files): no traversal."""
    if not isinstance(path, str) or not path or "\\" in path or any(ord(ch) < 32 for ch in path):
        return False
    pure = PurePosixPath(path)
    return not pure.is_absolute() and all(part not in ("..", ".", "") for part in path.split("/"))


def result_path(root: Path, encoder: str, task: str, dataset: str) -> Path:
    return Path(root) / encoder / RESULTS / task / f"{dataset}.json"


def layout_problems(folder: Path, shown: str) -> list[Problem]:
    """Links, unsafe names, unexpected files and oversized files in one submission folder."""
    problems = []
    if folder.is_symlink():
        return [Problem(shown, "", "is a symbolic link; submissions must be plain folders")]
    for root, dirs, files in os.walk(folder, followlinks=False):
        rel_root = Path(root).relative_to(folder)
        for name in sorted(dirs + files):
            path, rel = Path(root) / name, (rel_root / name).as_posix()
            where = f"{shown}/{rel}"
            if path.is_symlink():
                problems.append(Problem(where, "", "is a symbolic link; links are not allowed in submissions"))
            elif not safe_name(name):
                problems.append(Problem(where, "", f"file name {name!r} is not safe (letters, digits, '.', '_', '-')"))
            elif path.is_file():
                problems.extend(_file_problem(path, rel, where))
            elif path.is_dir() and not _allowed_dir(rel):
                problems.append(Problem(where, "", f"unexpected folder; the layout is {ENCODER_FILE}, {README} and "
                                                   f"{RESULTS}/<task>/<dataset>.json"))
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink() and safe_name(d)]
    return problems


def _allowed_dir(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == RESULTS and len(parts) <= 2


def _file_problem(path: Path, rel: str, where: str) -> list[Problem]:
    parts, size = rel.split("/"), path.stat().st_size
    if rel in (ENCODER_FILE, README):
        limit = MAX_TEXT_BYTES
    elif len(parts) == 3 and parts[0] == RESULTS and parts[2].endswith(".json"):
        limit = MAX_RESULT_BYTES
    else:
        return [Problem(where, "", f"unexpected file; the layout is {ENCODER_FILE}, {README} and "
                                   f"{RESULTS}/<task>/<dataset>.json")]
    if size > limit:
        return [Problem(where, "", f"{size} bytes is over the {limit}-byte limit for this file")]
    return []


def dumps(value, indent: int = 0) -> str:
    """JSON with one line per list of scalars (a metric's values, a confusion-matrix row, a
    prediction column): the same data as ``json.dumps``, far fewer lines, readable diffs."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return json.dumps(list(value), separators=(",", ":"))
        return "[\n" + ",\n".join(inner + dumps(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value)


def shortened(value, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
