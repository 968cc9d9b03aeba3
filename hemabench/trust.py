"""Trust tiers: what was checked about a result, shown as a badge on every leaderboard row.

Nothing short of re-running can tell perfect predictions from a perfect encoder, so the
leaderboard says what was done:

- **verified**: re-computed from public weights and data. The offline baselines on the
  synthetic twins are re-run by CI on every run (``hemabench check``); any other result is
  verified by a maintainer with ``hemabench check --reproduce SUBMISSION``, which records who,
  when and where in the result's ``verification`` block and lists the sha256 of the predictions
  it reproduced in the maintainers' ledger ``benchmarks/verified.yaml`` (reviewed like code: a
  submitter cannot verify their own result, and editing the predictions afterwards drops the
  result back to self-reported).
- **self-reported**: passes every consistency check of ``hemabench validate``.
- **paper**: a number typed from a publication (with its citation); shown, never ranked with runs.

A result on a real dataset whose split is not registered (``benchmarks/fingerprints.yaml``) is
shown as an "unregistered split" and never ranked.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import yaml

from hemabench.paths import benchmarks_dir

VERIFIED, SELF_REPORTED, PAPER = "verified", "self-reported", "paper"
TIERS = (VERIFIED, SELF_REPORTED, PAPER)
CI_VERIFIER = "CI: `hemabench check` re-runs this result on every run"
LEDGER_HEADER = """\
# Verified results: predictions sha256 -> who reproduced them, when and where, with
# `hemabench check --reproduce SUBMISSION` (hemabench/submissions/reproduce.py). Maintainers only;
# reviewed like code. A result is "verified" only when its predictions' sha256 is listed here.
"""


def ledger_path() -> Path:
    return benchmarks_dir() / "verified.yaml"


def load_ledger(path: Path | None = None) -> dict:
    return dict(_load_ledger(str(path or ledger_path()), _mtime(path or ledger_path())))


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.is_file() else 0


@lru_cache(maxsize=4)
def _load_ledger(path: str, mtime: int) -> dict:
    if not mtime:
        return {}
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else {}


def predictions_sha256(result: dict) -> str:
    """sha256 of the canonical JSON of a result's predictions (what a verification vouches for)."""
    text = json.dumps(result.get("predictions") or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def ci_reproducible(result: dict) -> bool:
    from hemabench.results import ResultError
    from hemabench.submissions.check import reproducible

    try:
        return reproducible(result) == ""
    except (ResultError, KeyError, TypeError):
        return False


def is_paper(result: dict) -> bool:
    return (result.get("trust") or {}).get("tier") == PAPER if isinstance(result.get("trust"), dict) else False


def trust_of(result: dict) -> tuple[str, str]:
    """(tier, who verified it: the badge's tooltip), each check done once."""
    if is_paper(result):
        return PAPER, "published number (typed from the paper); never ranked with hemabench runs"
    if ci_reproducible(result):
        return VERIFIED, CI_VERIFIER
    ledger, sha = load_ledger(), predictions_sha256(result)
    if sha in ledger:
        v = ledger[sha]
        return VERIFIED, f"verified by {v.get('by')} on {v.get('at')} at {v.get('where')} (hemabench check --reproduce)"
    return SELF_REPORTED, "self-reported: passes every consistency check; not re-computed by a maintainer"


def tier_of(result: dict) -> str:
    return trust_of(result)[0]


def verified_by(result: dict) -> str:
    """A one-line description of who verified the result (for the badge's tooltip)."""
    return trust_of(result)[1]


def ranked(result: dict) -> bool:
    """False for published numbers and for results on an unregistered split of a real dataset."""
    from hemabench.datasets import DATASETS
    from hemabench.submissions.integrity import split_status

    if is_paper(result):
        return False
    dataset = result.get("dataset")
    if dataset in DATASETS and DATASETS.get(dataset).synthetic:
        return True  # validate rejects unregistered synthetic splits; fixtures and local runs rank as before
    return split_status(result) == "registered"


def unranked_reason(result: dict) -> str:
    """What the rank column shows for a result that is not ranked."""
    if is_paper(result):
        return "not ranked (paper)"
    return "not ranked (unregistered split)" if not ranked(result) else "–"
