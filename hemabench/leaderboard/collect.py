"""Reading results for the leaderboard, and grouping them into boards of comparable results.

A *board* is one (task, dataset) under one protocol: the same task version, the same task
parameters (the demo's lighter repetitions are a different board from the full protocol)
and the same split fingerprints. Only results on one board are ever ranked against each
other; everything else is shown side by side but never ranked together.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from hemabench.files.canonical import canonical_sha256
from hemabench.results import Result, ResultError, Score

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SUBMISSION_RESULTS = "results"
ENCODER_FILE = "encoder.yaml"


def slug(text: str, lower: bool = True) -> str:
    """A file-name-safe form of any string; a hash suffix keeps distinct inputs distinct."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text).lower() if lower else str(text)).strip("-.")[:48] or "x"
    return out if out == text else f"{out}-{digest(text, 6)}"


def anchor(text: str) -> str:
    """An HTML id / URL fragment for any string (case kept: class codes stay readable)."""
    return slug(text, lower=False)


def board_title(board: Board) -> str:
    return f"{board.task} / {board.dataset}"


def board_href(board: Board, prefix: str = "") -> str:
    return f"{prefix}tasks/{board.slug}.html"


def encoder_href(encoder: str, prefix: str = "") -> str:
    return f"{prefix}encoders/{slug(encoder)}.html"


def digest(value, n: int = 8) -> str:
    """Short sha256 of a JSON-able value (canonical form), e.g. to name a parameter set."""
    return canonical_sha256(value, spaced=True)[:n]


@dataclass
class Entry:
    """One result file, with where it came from and its encoder's submission metadata."""

    result: Result
    path: Path
    origin: str  # "submission" or "local run"
    meta: dict = field(default_factory=dict)  # encoder.yaml of a submission ({} for a local run)

    @property
    def encoder(self) -> str:
        return self.result.encoder

    @property
    def main(self) -> Score:
        return self.result.main

    @cached_property
    def trust(self) -> tuple[str, str]:
        """(tier, who verified it), computed once (it may hash every prediction)."""
        from hemabench.submissions.trust import trust_of

        return trust_of(self.result)


@dataclass
class Board:
    """Comparable results of one task on one dataset; ``entries`` maps encoder -> Entry."""

    key: tuple
    entries: dict[str, Entry] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    comparisons: list = field(default_factory=list)

    @property
    def first(self) -> Result:
        return next(iter(self.entries.values())).result

    @property
    def task(self) -> str:
        return str(self.key[0])

    @property
    def dataset(self) -> str:
        return str(self.key[1])

    @property
    def version(self) -> int:
        return self.key[2]

    @property
    def params_digest(self) -> str:
        return self.key[3]

    @property
    def slug(self) -> str:
        return f"{slug(self.task)}--{slug(self.dataset)}--{digest(self.key)}"

    @property
    def main_metric(self) -> str:
        return self.first.main_metric

    def sorted_encoders(self) -> list[str]:
        """Best tie group first, then by mean main score."""
        unranked = len(self.entries) + 1  # published numbers, unregistered splits: after every ranked row
        return sorted(self.entries, key=lambda e: (self.ranks.get(e, unranked), -self.entries[e].main.mean, e))


def board_key(result: Result) -> tuple:
    split, source = result.split, result.source_split
    return (result.task, result.dataset, result.task_version, digest(result.params),
            str(split.get("fingerprint", "")), str(source.get("fingerprint", "")),
            f"{split.get('name')}@{split.get('version')}", result.main_metric)


def _read_json(path: Path, warnings: list[str]) -> Result | None:
    from hemabench.files.untrusted import UntrustedInput, load_json
    from hemabench.submissions.layout import MAX_RESULT_BYTES

    try:
        result = Result.from_dict(load_json(path, MAX_RESULT_BYTES), path)
    except (OSError, UntrustedInput, ResultError) as exc:
        warnings.append(f"{exc}; skipped" if not isinstance(exc, OSError) else f"{path}: skipped, not readable ({exc})")
        return None
    problem = cost_problem(result.encoder_cost)
    if problem:  # a malformed cost (gflops "abc") once crashed the build half-way: the numbers stay, the cost goes
        warnings.append(f"{path}: encoder_cost not shown ({problem})")
        result = result.with_encoder_cost(None)
    return result


@functools.cache
def _cost_validator():
    import jsonschema

    from hemabench.results.result import SCHEMA_PATH

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())["properties"]["encoder_cost"])


def cost_problem(cost) -> str | None:
    """Why an ``encoder_cost`` cannot be shown (its schema, finite numbers below 1e15), or None."""
    import math

    import jsonschema

    if cost is None:
        return None
    error = jsonschema.exceptions.best_match(_cost_validator().iter_errors(cost))
    if error is not None:
        return f"{'/'.join(map(str, error.absolute_path)) or 'encoder_cost'}: {' '.join(error.message.split())[:200]}"
    bad = [k for k, v in cost.items() if isinstance(v, int | float) and not (math.isfinite(v) and abs(v) < 1e15)]
    return f"{bad[0]} is not a finite number below 1e15" if bad else None


def _json_files(folder: Path, warnings: list[str]) -> list[Path]:
    """JSON files under ``folder``; links (to files or folders) are never followed."""
    files = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        for name in sorted(names + [d for d in dirs if (Path(root) / d).is_symlink()]):
            path = Path(root) / name
            if path.is_symlink():
                warnings.append(f"{path}: skipped, a symbolic link")
            elif name.endswith(".json"):
                files.append(path)
    return sorted(files)


def load_entries(submissions: Path | None = None, results: list[Path] | tuple = (),
                 warnings: list[str] | None = None) -> list[Entry]:
    """Results of every submission (``<dir>/<encoder>/results/**.json``) and of local runs
    (``<dir>/<encoder>/<task>/<dataset>.json``); later sources replace earlier ones for the
    same encoder and board."""
    warnings = warnings if warnings is not None else []
    found: dict[tuple, Entry] = {}
    if submissions is not None and Path(submissions).is_dir():
        for folder in sorted(p for p in Path(submissions).iterdir() if p.is_dir() and not p.is_symlink()):
            meta = _read_meta(folder / ENCODER_FILE, warnings)
            for path in _json_files(folder / SUBMISSION_RESULTS, warnings):
                result = _read_json(path, warnings)
                if result is not None:
                    found[(result.encoder, board_key(result))] = Entry(result, path, "submission", meta)
    metas = {e.encoder: e.meta for e in found.values() if e.meta}
    for folder in results:
        for path in _json_files(Path(folder), warnings) if Path(folder).is_dir() else []:
            result = _read_json(path, warnings)
            if result is not None:
                meta = metas.get(result.encoder, {})  # the submitted metadata, for the same weights only
                same = meta.get("weights_sha256") == result.weights_sha256
                found[(result.encoder, board_key(result))] = Entry(result, path, "local run", meta if same else {})
    return list(found.values())


def _read_meta(path: Path, warnings: list[str]) -> dict:
    if not path.is_file():
        return {}
    from hemabench.files.untrusted import UntrustedInput, load_yaml
    from hemabench.submissions.layout import MAX_TEXT_BYTES

    try:
        meta = load_yaml(path, MAX_TEXT_BYTES)
    except (OSError, UntrustedInput) as exc:
        warnings.append(f"{' '.join(str(exc).split())}; encoder metadata not shown")
        return {}
    if not isinstance(meta, dict):
        warnings.append(f"{path}: not a mapping; encoder metadata not shown")
        return {}
    wrong = [key for key in ("spec", "submission") if key in meta and not isinstance(meta[key], dict)]
    for key in wrong:  # `spec: [x]` once crashed the build: validate refuses it, the site leaves it out
        warnings.append(f"{path}: {key} is not a mapping; not shown")
    return {k: v for k, v in meta.items() if k not in wrong}


def group_boards(entries: list[Entry]) -> list[Board]:
    """Boards sorted by task, dataset and task version."""
    boards: dict[tuple, Board] = {}
    for entry in entries:
        board = boards.setdefault(board_key(entry.result), Board(board_key(entry.result)))
        board.entries[entry.encoder] = entry
    return sorted(boards.values(), key=lambda b: (b.task, b.dataset, str(b.version), b.key))
