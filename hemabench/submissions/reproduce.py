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

The stored predictions pass when every cell equals the re-run's (``--tolerance`` allows a small
fraction of disagreeing cells, e.g. GPU numerics); then the result gets a ``verification`` block
(who, when, where, what was compared) and the sha256 of its predictions is added to the
maintainers' ledger ``benchmarks/verified.yaml``, reviewed like code: a ``verification`` block
alone, without its ledger entry, verifies nothing.
"""

from __future__ import annotations

import getpass
import json
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from hemabench.atomic import atomic_write_text
from hemabench.submissions.layout import RESULTS, Problem, dumps
from hemabench.trust import LEDGER_HEADER, ledger_path, load_ledger, predictions_sha256

FRACTION, SEED, MIN_COSINE = 0.02, 0, 0.99


@dataclass
class ReproduceReport:
    problems: list[Problem] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    verified: list[Path] = field(default_factory=list)


def _as_dict(result) -> dict:
    return result if isinstance(result, dict) else result.data  # a typed Result object


def prediction_cells(result: dict) -> dict[tuple, str]:
    """Every stored prediction as ((variant, id, fold) or (variant, fold, repetition), value), and each
    stored per-cell cosine (robustness) as ((variant, id, fold, "cosine"), value to 3 decimals)."""
    cells = {}
    for variant, columns in (result.get("predictions") or {}).items():
        if "id" in columns:
            for key in zip(columns.get("id") or [], columns.get("fold") or [], columns.get("pred") or []):
                cells[(variant, str(key[0]), str(key[1]))] = str(key[2])
            for i, f, cos in zip(columns.get("id") or [], columns.get("fold") or [], columns.get("cosine") or []):
                cells[(variant, str(i), str(f), "cosine")] = f"{float(cos):.3f}"  # robustness; 3 decimals: bf16 vs fp32
        for i, matrix in enumerate(columns.get("confusions") or []):
            cells[(variant, f"confusions[{i}]", str((columns.get("fold") or [""] * (i + 1))[i]))] = json.dumps(matrix)
    return cells


def compare_predictions(stored: dict, fresh: dict) -> tuple[int, list[tuple]]:
    """(cells compared, the cells whose stored value the re-run does not give)."""
    old, new = prediction_cells(stored), prediction_cells(fresh)
    differ = [key for key in old if new.get(key) != old[key]] + [key for key in new if key not in old]
    return len(old), differ


def sample_embeddings(encoder_name: str, dataset: str, split_name: str, fraction: float, seed: int,
                      data_root: str | None, device: str) -> tuple[int, float]:
    """Re-embed a seeded sample of the split's test images from scratch and compare with the cache:
    returns (images sampled, smallest cosine similarity)."""
    import torch
    from PIL import Image

    from hemabench.datasets import load_dataset
    from hemabench.device import resolve_device
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


def _record(path: Path, result: dict, verification: dict, ledger: Path) -> None:
    """The verification block into the result, its predictions' sha256 into the maintainers' ledger."""
    sha = predictions_sha256(result)
    atomic_write_text(path, dumps({**result, "verification": {**verification, "predictions_sha256": sha}}) + "\n")
    entries = dict(load_ledger(ledger))
    entries[sha] = {"result": f"{result['encoder']['name']}/{result['task']}/{result['dataset']}",
                    **{k: verification[k] for k in ("by", "at", "where")}}
    atomic_write_text(ledger, LEDGER_HEADER + yaml.safe_dump(entries, sort_keys=True, width=120))


def reproduce(submission: Path, fraction: float = FRACTION, seed: int = SEED, tolerance: float = 0.0,
              data_root: str | None = None, device: str = "auto", by: str | None = None, record: bool = True,
              ledger: Path | None = None, progress: bool = False) -> ReproduceReport:
    """Re-run every result of one submission folder and compare (see the module docstring)."""
    from hemabench.device import resolve_device
    from hemabench.results import Result
    from hemabench.runner import RunOptions, run_plan
    from hemabench.untrusted import load_json

    report, submission = ReproduceReport(), Path(submission)
    files = sorted((submission / RESULTS).glob("*/*.json"))
    if not files:
        report.problems.append(Problem(str(submission), RESULTS, "holds no result files to reproduce"))
        return report
    items = [(path, Result.from_dict(load_json(path, 64 * 2**20), path).data) for path in files]  # one line if not a result
    who, where = by or _who(), f"{platform.node()} ({resolve_device(device)}, {platform.machine()})"
    with tempfile.TemporaryDirectory(prefix="hemabench-reproduce-") as tmp:
        for path, stored in items:
            encoder = stored["encoder"]["name"]
            options = RunOptions(out=Path(tmp) / path.parent.name, data_root=data_root, device=device,
                                 progress=progress, task_params={stored["task"]: Result.from_dict(stored, path).params})
            outcome = run_plan([encoder], [(stored["task"], stored["dataset"])], options).outcomes[0]
            if outcome.result is None:
                report.problems.append(Problem(str(path), "", f"could not be re-run: {outcome.reason}"))
                continue
            fresh = _as_dict(outcome.result)
            split = stored.get("split") or {}
            n, cosine = sample_embeddings(encoder, stored["dataset"], str(split.get("name")), fraction, seed,
                                          data_root, device)
            cells, differ = compare_predictions(stored, fresh)
            report.lines.append(f"{path}: {n} sampled test images re-embedded (min cosine {cosine:.5f}); "
                                f"{cells - len(differ)}/{cells} stored predictions reproduced")
            problems = []
            if cosine < MIN_COSINE:
                problems.append(Problem(str(path), "embeddings", f"{n} test images re-embedded from the public weights "
                                        f"differ from the cached embeddings (min cosine {cosine:.4f} < {MIN_COSINE})"))
            if len(differ) > tolerance * max(cells, 1):
                shown = "; ".join(f"{v} {i} ({f})" for v, i, f in differ[:3])
                problems.append(Problem(str(path), "predictions", f"{len(differ)} of {cells} stored predictions are "
                                        f"not what the re-run gives (tolerance {tolerance:.2%}), e.g. {shown}"))
            report.problems += problems
            if not problems and record:
                _record(path, stored, {"tier": "verified", "by": who, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                       "where": where, "command": "hemabench check --reproduce",
                                       "fraction": fraction, "seed": seed, "sampled_images": n,
                                       "min_cosine": round(cosine, 6), "cells_compared": cells,
                                       "cells_differing": len(differ), "tolerance": tolerance},
                        ledger or ledger_path())
                report.verified.append(path)
    return report
