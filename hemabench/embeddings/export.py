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
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from hemabench.atomic import atomic_path

PROVENANCE_KEY = b"hemabench"


def export_kind(target: str | Path) -> str:
    suffix = Path(target).suffix.lower()
    return {".npz": "npz", ".parquet": "parquet"}.get(suffix, "" if suffix else "folder")


def export_embeddings(target: str | Path, embeddings, records: pd.DataFrame, split=None,
                      provenance: dict | None = None) -> list[str]:
    """Write ``target`` by its form (.npz, .parquet, or a folder); returns the fields written."""
    kind = export_kind(target)
    if kind == "npz":
        return _write_npz(Path(target), embeddings, records, split)
    if not kind:
        from hemabench.errors import HemabenchError

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
    """save_to_disk into a fresh folder; an existing folder is replaced only if it is a saved dataset."""
    if target.exists() and not (target / "dataset_info.json").is_file():
        from hemabench.errors import HemabenchError

        raise HemabenchError(f"--export {target}: the folder exists and is not a saved dataset; not overwriting it")
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    dataset.save_to_disk(str(staging))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def read_provenance(target: str | Path) -> dict:
    """The provenance JSON of an export (parquet metadata, or a saved folder's description)."""
    target = Path(target)
    if export_kind(target) == "parquet":
        import pyarrow.parquet as pq

        return json.loads(pq.read_schema(target).metadata[PROVENANCE_KEY])
    info = json.loads((target / "dataset_info.json").read_text())
    return json.loads(info.get("description") or "{}")
