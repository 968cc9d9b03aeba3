"""Trust tiers: what was checked about a result, shown as a badge on every leaderboard row.

Nothing short of re-running can tell perfect predictions from a perfect encoder, so the
leaderboard says what was done, keyed on everything a reader sees: the sha256 of the whole
canonical result (``submissions.ledger.result_sha256``: every prediction, probability, metric, ``extra`` number
and parameter; only the ``verification`` block itself is left out):

- **verified**: a re-run matched the whole result under the tolerance policy of
  ``hemabench.submissions.compare``. Either a maintainer ran ``hemabench check --reproduce
  SUBMISSION``, which records who, when and where in the result's ``verification`` block and
  lists the result's sha256 in the maintainers' ledger ``benchmarks/verified.yaml`` (reviewed
  like code: a submitter cannot verify their own result, and editing any field afterwards drops
  the result back to self-reported); or the result is, byte for byte (the same sha256), a
  committed reference of this repository that CI re-runs and compares on every commit
  (``hemabench check``: an offline encoder on an embedded dataset). A copy with other numbers,
  e.g. a local run passed with ``--results``, is not that reference and is self-reported.
- **self-reported**: passes every consistency check of ``hemabench validate``.
- **paper**: a number typed from a publication (with its citation); shown, never ranked with runs.

A result on a real dataset whose split is not registered (``benchmarks/fingerprints.yaml``) is
shown as an "unregistered split" and never ranked.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hemabench.paths import benchmarks_dir
from hemabench.results.result import Result, ResultError
from hemabench.submissions.ledger import load_ledger, mtime, result_sha256

VERIFIED, SELF_REPORTED, PAPER = "verified", "self-reported", "paper"
TIERS = (VERIFIED, SELF_REPORTED, PAPER)
COMPARED = "compared every prediction, probability, metric and extra number with the re-run (docs/integrity.md)"
CI_VERIFIER = f"verified: a committed reference that CI re-runs on every commit (hemabench check), which {COMPARED}"


def ci_reproducible(result: Result) -> bool:
    from hemabench.submissions.check import reproducible

    return reproducible(result) == ""


def committed_reference(result: Result) -> Path | None:
    """The repository's committed reference at this result's place (submissions/<encoder>/results/...)."""
    encoder, task, dataset = result.encoder, result.task, result.dataset
    if not all(isinstance(x, str) and x and "/" not in x and not x.startswith(".") for x in (encoder, task, dataset)):
        return None
    path = benchmarks_dir().parent / "submissions" / encoder / "results" / task / f"{dataset}.json"
    return path if path.is_file() and not path.is_symlink() else None


def ci_checked(result: Result) -> bool:
    """True for a committed reference CI re-runs (``hemabench check``), unchanged (same whole-result sha256)."""
    from hemabench.files.untrusted import UntrustedInput, load_json

    path = committed_reference(result) if ci_reproducible(result) else None
    if path is None:
        return False
    try:
        return _file_sha(str(path), mtime(path), load_json) == result_sha256(result)
    except (UntrustedInput, OSError, ValueError, ResultError):
        return False


@lru_cache(maxsize=256)
def _file_sha(path: str, mtime: int, load) -> str:
    return result_sha256(Result.from_dict(load(Path(path), 64 * 2**20), path))


def is_paper(result: Result) -> bool:
    return result.trust.get("tier") == PAPER


def trust_of(result: Result) -> tuple[str, str]:
    """(tier, who verified it: the badge's tooltip), each check done once."""
    if is_paper(result):
        return PAPER, "published number (typed from the paper); never ranked with hemabench runs"
    ledger, sha = load_ledger(), result_sha256(result)
    if isinstance(ledger.get(sha), dict):
        v = ledger[sha]
        return VERIFIED, (f"verified by {v.get('by')} on {v.get('at')} at {v.get('where')}: hemabench check --reproduce "
                          f"re-ran it from public weights and data and {COMPARED}")
    if ci_checked(result):
        return VERIFIED, CI_VERIFIER
    return SELF_REPORTED, "self-reported: passes every consistency check of hemabench validate; not re-computed"


def tier_of(result: Result) -> str:
    return trust_of(result)[0]


def verified_by(result: Result) -> str:
    """A one-line description of who verified the result (for the badge's tooltip)."""
    return trust_of(result)[1]


def ranked(result: Result) -> bool:
    """False for published numbers and for results on an unregistered split of a real dataset."""
    from hemabench.datasets import DATASETS
    from hemabench.submissions.integrity import split_status

    if is_paper(result):
        return False
    dataset = result.dataset
    if dataset in DATASETS and DATASETS.get(dataset).synthetic:
        return True  # validate rejects unregistered synthetic splits; fixtures and local runs rank as before
    return split_status(result) == "registered"


def unranked_reason(result: Result) -> str:
    """What the rank column shows for a result that is not ranked."""
    if is_paper(result):
        return "not ranked (paper)"
    return "not ranked (unregistered split)" if not ranked(result) else "–"
