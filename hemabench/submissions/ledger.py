"""The maintainers' ledger of verified results, ``benchmarks/verified.yaml``: result sha256 -> who
reproduced it, when and where (written by ``hemabench check --reproduce``, read by the trust tiers).

``result_sha256`` is the sha256 of the whole canonical result but its ``verification`` block: what a
verification vouches for (any edit a reader could see changes it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hemabench.files.canonical import canonical_sha256
from hemabench.files.untrusted import load_yaml
from hemabench.paths import benchmarks_dir
from hemabench.results.result import Result

LEDGER_HEADER = """\
# Verified results: sha256 of the whole result (hemabench.submissions.ledger.result_sha256) -> who reproduced
# it, when and where, with `hemabench check --reproduce SUBMISSION` (hemabench/submissions/reproduce.py).
# Maintainers only; reviewed like code. A result is "verified" only when its sha256 is listed here.
"""


def ledger_path() -> Path:
    return benchmarks_dir() / "verified.yaml"


def load_ledger(path: Path | None = None) -> dict:
    path = path or ledger_path()
    return dict(_load_ledger(str(path), mtime(path)))


def mtime(path: Path) -> int:
    """The file's modification time in ns (0 when absent): the cache key of a file read once per change."""
    return path.stat().st_mtime_ns if path.is_file() else 0


@lru_cache(maxsize=4)
def _load_ledger(path: str, modified: int) -> dict:
    if not modified:
        return {}
    return load_yaml(path, mapping=True)


def result_sha256(result: Result) -> str:
    """sha256 of the canonical JSON of the whole result but its ``verification`` block: what a
    verification vouches for (any edit a reader could see changes it)."""
    return canonical_sha256(result.vouched_document)
