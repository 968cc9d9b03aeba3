"""``hemabench submit``: copy one encoder's run into the submission layout and start its metadata.

The run's files are copied unchanged in content (re-serialised with one line per list, see
``layout.dumps``); ``encoder.yaml`` gets the registered spec, the weights hash from the
results and the submission fields a person must fill in. Re-submitting keeps what was
filled in and refreshes the spec and hash.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import yaml

import hemabench
from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_write_text
from hemabench.files.untrusted import load_yaml
from hemabench.results import Result
from hemabench.submissions.layout import ENCODER_FILE, dumps, name_problem, result_path

TODO = "TODO"
HEADER = """\
# hemabench submission metadata. Fill in every TODO, then run:
#   hemabench validate submissions/{name}
# submission.license / training_data: of the weights (pre-filled from the spec; correct them if needed)
# submission.not_trained_on_test_splits: set to true only if no image of any test split of the datasets
#   evaluated here (see the split fingerprints in the results) was used to train or tune the encoder
# submission.statement: one or two sentences saying how you know (training data, deduplication, ...)
"""


def find_run_files(results: Path, encoder: str) -> list[Path]:
    """``<results>/<encoder>/<task>/<dataset>.json`` (a run's --out), or ``<results>/<task>/<dataset>.json``."""
    base = results / encoder if (results / encoder).is_dir() else results
    files = sorted(p for p in base.glob("*/*.json") if p.is_file() and not p.is_symlink())
    if not files:
        raise HemabenchError(f"no result files for {encoder!r} under {results} (expected "
                             f"{results}/{encoder}/<task>/<dataset>.json, as written by `hemabench run --out`)")
    return files


def metadata_template(encoder: str, weights_sha256: str, existing: dict | None = None) -> dict:
    from hemabench.encoders import ENCODERS

    spec = ENCODERS.get(encoder)
    submission = {"submitted_by": TODO, "contact": TODO, "date": datetime.date.today().isoformat(),
                  "hemabench_version": hemabench.__version__, "license": spec.license,
                  "training_data": spec.training_data, "not_trained_on_test_splits": False,
                  "statement": TODO, "code_url": ""}
    submission.update((existing or {}).get("submission") or {})
    return {"encoder": encoder, "weights_sha256": weights_sha256, "submission": submission, "spec": spec.to_dict()}


def submit(encoder: str, results: str | Path, submissions: str | Path = "submissions",
           overwrite: bool = False) -> list[Path]:
    """Copy the run into ``<submissions>/<encoder>/``; returns the files written."""
    problem = name_problem("--encoder", "", encoder)
    if problem:
        raise HemabenchError(str(problem))
    results, root = Path(results), Path(submissions)
    written, hashes = [], set()
    for path in find_run_files(results, encoder):
        result = Result.load(path)  # a file that is not a result stops here, naming it
        names = {"encoder.name": result.encoder, "task": result.task, "dataset": result.dataset}
        for field, value in names.items():
            problem = name_problem(str(path), field, value)
            if problem:
                raise HemabenchError(str(problem))
        if result.dataset.startswith("custom-") or result.dataset_info.get("custom"):
            raise HemabenchError(f"{path}: {result.dataset} is your own data (folder:, hf:, hf-disk:): own-data results "
                                 "are not submittable, since no one else can re-run them; to submit on it, register "
                                 "the dataset (README, 'Adding a dataset') and run on its registered name")
        if names["encoder.name"] != encoder:
            raise HemabenchError(f"{path}: encoder.name is {names['encoder.name']!r}, not {encoder!r}")
        target = result_path(root, encoder, names["task"], names["dataset"])
        if target.exists() and not overwrite:
            raise HemabenchError(f"{target} exists; pass --overwrite to replace it")
        atomic_write_text(target, dumps(result.document) + "\n")
        target.chmod(0o644)
        written.append(target)
        hashes.add(result.weights_sha256)
    if len(hashes) != 1:
        raise HemabenchError(f"the results of {encoder!r} come from {len(hashes)} different weights: {sorted(hashes)}")
    meta_path = root / encoder / ENCODER_FILE
    existing = load_yaml(meta_path, mapping=True) if meta_path.is_file() else None
    meta = metadata_template(encoder, hashes.pop(), existing)
    atomic_write_text(meta_path, HEADER.format(name=encoder) + yaml.safe_dump(meta, sort_keys=False, width=110))
    meta_path.chmod(0o644)
    return [meta_path, *written]
