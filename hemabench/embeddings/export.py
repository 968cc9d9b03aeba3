"""Embeddings out of hemabench: ``.npz`` arrays, or a ``datasets.Dataset`` (parquet file or saved folder).

The dataset form is for use without hemabench: one row per record with ``id`` (record path),
``label``, ``patient``, ``part`` (under the chosen split, else null), ``valid`` and
``embedding`` (a fixed-size float32 list). What made it (encoder and weights hash, cache key,
dataset and its source, split rule and fingerprint, hemabench version) is stored as JSON: in
the parquet schema metadata under ``hemabench`` and, for a saved folder, as the dataset
info's ``description``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_path

PROVENANCE_KEY = b"hemabench"
SAVED_FILES = frozenset({"dataset_info.json", "state.json"})  # what save_to_disk writes, beside its arrow files
SAVED_DATA = re.compile(r"^data-\d{5}-of-\d{5}\.arrow$")


def export_kind(target: str | Path) -> str:
    suffix = Path(target).suffix.lower()
    return {".npz": "npz", ".parquet": "parquet"}.get(suffix, "" if suffix else "folder")


def export_embeddings(target: str | Path, embeddings, records: pd.DataFrame, split=None,
                      provenance: dict | None = None, source: str | Path | None = None) -> list[str]:
    """Write ``target`` by its form (.npz, .parquet, or a folder); returns the fields written.
    ``source``: the folder the images came from, which an export never writes into."""
    if source is not None:
        inside, data = Path(target).expanduser().resolve(), Path(source).expanduser().resolve()
        if inside == data or data in inside.parents or inside in data.parents:
            raise HemabenchError(f"--export {target}: lies inside (or holds) the input data {source}; an export never "
                                 "writes into its own input: choose a path outside it")
    kind = export_kind(target)
    if kind == "npz":
        return _write_npz(Path(target), embeddings, records, split)
    if not kind:
        raise HemabenchError(f"--export {target}: expected a .npz or .parquet file, or a folder (save_to_disk)")
    dataset = embedding_dataset(embeddings, records, split, provenance or {})
    if kind == "parquet":
        _write_parquet(Path(target), dataset, provenance or {})
    else:
        _save_folder(Path(target), dataset)
    return list(dataset.column_names)


def embedding_dataset(embeddings, records: pd.DataFrame, split, provenance: dict):
    import datasets

    features = np.asarray(embeddings.features, dtype=np.float32)
    schema = datasets.Features({
        "id": datasets.Value("string"), "label": datasets.Value("string"), "patient": datasets.Value("string"),
        "part": datasets.Value("string"), "valid": datasets.Value("bool"),
        "embedding": datasets.List(datasets.Value("float32"), length=features.shape[1])})
    parts = split.assignment["part"].astype(str).tolist() if split is not None else [None] * len(records)
    columns = {"id": list(map(str, embeddings.paths)), "label": records["label"].astype(str).tolist(),
               "patient": [None if p is None or pd.isna(p) else str(p) for p in records["patient"]],
               "part": parts, "valid": np.asarray(embeddings.valid, dtype=bool).tolist(), "embedding": features}
    info = datasets.DatasetInfo(description=json.dumps(provenance, sort_keys=True), features=schema)
    return datasets.Dataset.from_dict(columns, features=schema, info=info)


def _write_npz(target: Path, embeddings, records: pd.DataFrame, split) -> list[str]:
    arrays = {"features": np.asarray(embeddings.features), "labels": records["label"].to_numpy(str),
              "paths": np.asarray(embeddings.paths, dtype=str), "valid": embeddings.valid}
    if split is not None:
        arrays["split"] = split.assignment["part"].to_numpy(str)
        arrays["split_fingerprint"] = np.asarray(split.fingerprint)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return list(arrays)


def _write_parquet(target: Path, dataset, provenance: dict) -> None:
    import pyarrow.parquet as pq

    table = dataset.data.table
    metadata = {**(table.schema.metadata or {}), PROVENANCE_KEY: json.dumps(provenance, sort_keys=True).encode()}
    with atomic_path(target) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)


def _save_folder(target: Path, dataset) -> None:
    """save_to_disk into a fresh folder; an existing folder is replaced only if it is an earlier
    export (only the files save_to_disk writes, hemabench provenance inside). Once any folder with
    a ``dataset_info.json`` was removed: a user's image dataset and notes beside it."""
    if target.exists() or target.is_symlink():
        problem = _not_an_export(target)
        if problem:
            raise HemabenchError(f"--export {target}: the folder exists and {problem}; nothing was changed (export to a "
                                 "new folder)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        dataset.save_to_disk(str(staging))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            target.rename(old / "export")
            staging.rename(target)
            shutil.rmtree(old)  # the earlier export, checked above
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # ours; gone already when renamed into place


def _not_an_export(target: Path) -> str | None:
    """Why ``target`` is not a folder an earlier export wrote, or None."""
    if target.is_symlink() or not target.is_dir():
        return "is not a folder"
    foreign = sorted(p.name for p in target.iterdir()
                     if p.is_symlink() or not p.is_file() or not (p.name in SAVED_FILES or SAVED_DATA.match(p.name)))
    if foreign:
        return f"holds files an export does not write ({', '.join(foreign[:5])})"
    try:
        made_by = read_provenance(target)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        made_by = {}
    if not isinstance(made_by, dict) or not {"encoder", "cache_key", "hemabench_version"} <= set(made_by):
        return "is not a hemabench export (no hemabench provenance in its dataset_info.json)"
    return None


def read_provenance(target: str | Path) -> dict:
    """The provenance JSON of an export (parquet metadata, or a saved folder's description)."""
    target = Path(target)
    if export_kind(target) == "parquet":
        import pyarrow.parquet as pq

        return json.loads(pq.read_schema(target).metadata[PROVENANCE_KEY])
    info = json.loads((target / "dataset_info.json").read_text())
    return json.loads(info.get("description") or "{}")
