"""``hemabench check --reproduce SUBMISSION``: re-compute a submission from public weights and data.

What "reproduce" means for a frozen-encoder protocol: a linear probe's (or kNN's) prediction for
one test image depends on every training embedding, so a test image's prediction cannot be
recomputed from that image alone. The check therefore has two parts:

1. **The protocol, re-run in full** with the submission's recorded task parameters, through the
   normal runner and its embedding cache (which a maintainer's GPU machine fills from the public
   weights and data). Every stored prediction is compared with the re-run's, cell by cell.
2. **A seeded random sample of test images (default 2%) re-embedded from scratch**, bypassing the
   cache, from freshly loaded weights; each must equal the cached embedding the re-run used
   (cosine >= 0.99, which allows bf16/fp32 differences). So the predictions of step 1 rest on
   embeddings of these weights, not on a stale or poisoned cache.

The stored result passes when it first passes ``validate`` (every number recomputed from its
predictions, every derived number re-derived from the registered split) and then the WHOLE of it
matches the re-run under the tolerance policy of ``hemabench.submissions.compare`` (every
prediction cell, probability, metric, ``extra`` number and parameter; ``--tolerance`` is the
share of prediction cells that may differ, near-ties only). Then the result gets a
``verification`` block (who, when, where, what was compared) and the sha256 of the whole result
(``hemabench.submissions.ledger.result_sha256``) is added to the maintainers' ledger
``benchmarks/verified.yaml``, reviewed like code: a ``verification`` block alone, without its
ledger entry, verifies nothing, and any later edit changes the sha256.
"""

from __future__ import annotations

import getpass
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from hemabench.files.atomic import atomic_write_text
from hemabench.results.result import Result
from hemabench.submissions.compare import TOLERANCE, compare_results, tolerance_problem
from hemabench.submissions.layout import RESULTS, Problem, dumps
from hemabench.submissions.ledger import LEDGER_HEADER, ledger_path, load_ledger, result_sha256

FRACTION, SEED, MIN_COSINE = 0.02, 0, 0.99


@dataclass
class ReproduceReport:
    problems: list[Problem] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    verified: list[Path] = field(default_factory=list)


def sample_embeddings(encoder_name: str, dataset: str, split_name: str, fraction: float, seed: int,
                      data_root: str | None, device: str) -> tuple[int, float]:
    """Re-embed a seeded sample of the split's test images from scratch and compare with the cache:
    returns (images sampled, smallest cosine similarity)."""
    import torch
    from PIL import Image

    from hemabench.compute.device import resolve_device
    from hemabench.datasets import load_dataset
    from hemabench.embeddings import extract_embeddings
    from hemabench.encoders import load_encoder
    from hemabench.splits import MaterialisedSplit, get_rule

    discovery = load_dataset(dataset, data_root=data_root)
    rule = get_rule(dataset, split_name)
    split = MaterialisedSplit.build(dataset, rule, discovery.records)
    test_parts = {p for rotation in rule.rotations() for p in rotation["test"]}
    test_rows = np.flatnonzero(split.assignment["part"].isin(test_parts).to_numpy())
    rng = np.random.default_rng(seed)
    n = min(len(test_rows), max(1, round(fraction * len(test_rows))))
    rows = np.sort(rng.choice(test_rows, size=n, replace=False))
    cached, _ = extract_embeddings(load_encoder(encoder_name, device="cpu"), discovery.root, discovery.records,
                                   dataset=dataset, device=device, progress=False)
    torch_device = resolve_device(device)
    encoder = load_encoder(encoder_name, device=str(torch_device))  # freshly loaded weights, no cache
    paths = discovery.records["path"].to_numpy()
    fresh = []
    with torch.inference_mode():
        for start in range(0, len(rows), 32):
            batch = []
            for i in rows[start:start + 32]:
                with Image.open(discovery.root / paths[i]) as image:
                    batch.append(encoder.transform(image.convert("RGB")))
            fresh.append(encoder.model(torch.stack(batch).to(torch_device)).float().cpu().numpy())
    new = np.concatenate(fresh).astype(np.float64)
    old = np.asarray(cached.features[rows], dtype=np.float64)
    cosine = (new * old).sum(1) / np.maximum(np.linalg.norm(new, axis=1) * np.linalg.norm(old, axis=1), 1e-12)
    return n, float(cosine.min())


def _who() -> str:
    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    return name or getpass.getuser()


def _record(path: Path, result: Result, verification: dict, ledger: Path) -> None:
    """The verification block into the result, the whole result's sha256 into the maintainers' ledger."""
    sha = result_sha256(result)
    atomic_write_text(path, dumps(result.with_verification({**verification, "result_sha256": sha}).document) + "\n")
    entries = dict(load_ledger(ledger))
    entries[sha] = {"result": f"{result.encoder}/{result.task}/{result.dataset}",
                    **{k: verification[k] for k in ("by", "at", "where", "tolerance")}}
    atomic_write_text(ledger, LEDGER_HEADER + yaml.safe_dump(entries, sort_keys=True, width=120))


def reproduce(submission: Path, fraction: float = FRACTION, seed: int = SEED, tolerance: float = TOLERANCE,
              data_root: str | None = None, device: str = "auto", by: str | None = None, record: bool = True,
              ledger: Path | None = None, progress: bool = False) -> ReproduceReport:
    """Re-run every result of one submission folder and compare (see the module docstring)."""
    from hemabench.compute.device import resolve_device
    from hemabench.files.untrusted import load_json
    from hemabench.pipeline.runner import RunOptions, run_plan
    from hemabench.submissions.validate import validate_result

    report, submission = ReproduceReport(), Path(submission)
    if tolerance_problem(tolerance):
        report.problems.append(Problem(str(submission), "--tolerance", tolerance_problem(tolerance)))
        return report
    files = sorted((submission / RESULTS).glob("*/*.json"))
    if not files:
        report.problems.append(Problem(str(submission), RESULTS, "holds no result files to reproduce"))
        return report
    items = [(path, Result.from_dict(load_json(path, 64 * 2**20), path)) for path in files]  # one line if not a result
    who, where = by or _who(), f"{platform.node()} ({resolve_device(device)}, {platform.machine()})"
    with tempfile.TemporaryDirectory(prefix="hemabench-reproduce-") as tmp:
        for path, stored in items:
            invalid = [p for p in validate_result(path, str(path), data_root) if p.level == "error"]
            if invalid:  # the numbers must first be the stored predictions' and the split's
                report.problems += invalid
                continue
            encoder = stored.encoder
            options = RunOptions(out=Path(tmp) / path.parent.name, data_root=data_root, device=device,
                                 progress=progress, task_params={stored.task: stored.params})
            outcome = run_plan([encoder], [(stored.task, stored.dataset)], options).outcomes[0]
            if outcome.result is None:
                report.problems.append(Problem(str(path), "", f"could not be re-run: {outcome.reason}"))
                continue
            n, cosine = sample_embeddings(encoder, stored.dataset, str(stored.split.get("name")), fraction, seed,
                                          data_root, device)
            comparison = compare_results(stored, outcome.result, tolerance)
            report.lines.append(f"{path}: {n} sampled test images re-embedded (min cosine {cosine:.5f}); "
                                f"{comparison.summary()}")
            problems = [Problem(str(path), where, message) for where, message in comparison.problems]
            if cosine < MIN_COSINE:
                problems.append(Problem(str(path), "embeddings", f"{n} test images re-embedded from the public weights "
                                        f"differ from the cached embeddings (min cosine {cosine:.4f} < {MIN_COSINE})"))
            report.problems += problems
            if not problems and record:
                _record(path, stored, {"tier": "verified", "by": who, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                       "where": where, "command": "hemabench check --reproduce",
                                       "compared": "the whole result: every prediction cell, probability, metric, "
                                                   "extra number and parameter (docs/integrity.md)",
                                       "fraction": fraction, "seed": seed, "sampled_images": n,
                                       "min_cosine": round(cosine, 6), "cells_compared": comparison.cells,
                                       "cells_differing": comparison.differing,
                                       "numbers_compared": comparison.numbers, "tolerance": tolerance},
                        ledger or ledger_path())
                report.verified.append(path)
    return report
