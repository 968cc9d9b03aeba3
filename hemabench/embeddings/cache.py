"""The content-addressed embedding cache.

An entry's key hashes everything that determines the numbers: the weight file hash, the
architecture and embedding rule, the preprocessing, and the record list (relative path,
size and modification time of every image, in order; or, with ``HEMABENCH_CACHE_KEY=content``,
the sha256 of every image's bytes: the source's ``digest``, ``datasets.sources.records_digest``). A changed weight file, image list or image is a different
entry, never stale features. Entries are written chunk by chunk, each chunk atomically, so a killed
extraction resumes where it stopped; the final arrays are assembled and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hemabench.embeddings.integrity import CacheCorrupt, entry_hashes, intact, seal, verify_entry, warn
from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_path, atomic_write_text
from hemabench.files.canonical import canonical_sha256
from hemabench.paths import cache_dir

CACHE_FORMAT = 1
CHUNK_SIZE = 256  # records per resumable chunk; fixed so a resumed run computes the same batches
MIN_KEY_PREFIX = 6  # `cache rm ""` once matched (and removed) every entry


def cache_key(encoder_identity: dict, records_sha256: str, dtype: str) -> str:
    return canonical_sha256({"format": CACHE_FORMAT, "encoder": encoder_identity, "records": records_sha256,
                             "dtype": dtype}, spaced=True)[:32]


@dataclass
class Embeddings:
    """Features of one dataset under one encoder, rows in record order."""

    features: np.ndarray  # (N, D), float16 by default
    paths: list[str]
    valid: np.ndarray  # (N,) bool: False where the image failed to decode during extraction
    failed: dict[str, str]  # path -> reason
    key: str


class CacheEntry:
    """One cache folder: chunks while extracting, then features.npy + index.json + meta.json."""

    def __init__(self, key: str, base: Path | None = None) -> None:
        self.key = key
        self.dir = (base or cache_dir() / "embeddings") / key

    @property
    def complete(self) -> bool:
        return (self.dir / "meta.json").is_file()

    def chunk_path(self, i: int) -> Path:
        return self.dir / "chunks" / f"chunk_{i:06d}.npz"

    def has_chunk(self, i: int) -> bool:
        """The chunk is on disk and matches its sha256 (a bad one is removed, so it is recomputed)."""
        return intact(self.chunk_path(i))

    def write_chunk(self, i: int, features: np.ndarray, valid: np.ndarray, failed: dict[str, str]) -> None:
        with atomic_path(self.chunk_path(i)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, features=features, valid=valid, failed=json.dumps(failed))
        seal(self.chunk_path(i))

    def assemble(self, paths: list[str], n_chunks: int, dim: int, dtype: str, meta: dict) -> None:
        """Stream the chunks into one memory-mapped array; memory does not grow with N.

        Another process extracting the same entry (a second sweep, a requeued job) may finish
        first and remove the chunks: its entry is identical, so this one then stands down."""
        try:
            if not self.complete:
                self._assemble(paths, n_chunks, dim, dtype, meta)
        except FileNotFoundError:
            if not self.complete:
                raise
        shutil.rmtree(self.dir / "chunks", ignore_errors=True)

    def _assemble(self, paths: list[str], n_chunks: int, dim: int, dtype: str, meta: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        valid = np.zeros(len(paths), dtype=bool)
        failed: dict[str, str] = {}
        with atomic_path(self.dir / "features.npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(paths), dim))
            for i in range(n_chunks):
                with np.load(self.chunk_path(i)) as chunk:
                    rows = slice(i * CHUNK_SIZE, i * CHUNK_SIZE + len(chunk["valid"]))
                    out[rows] = chunk["features"]
                    valid[rows] = chunk["valid"]
                    failed.update(json.loads(str(chunk["failed"])))
            out.flush()
            del out
        atomic_write_text(self.dir / "index.json", json.dumps({"paths": paths, "valid": valid.tolist(), "failed": failed}))
        atomic_write_text(self.dir / "meta.json", json.dumps({**meta, "n": len(paths), "dim": dim, "dtype": dtype,
                                                             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                             "files": entry_hashes(self.dir)}, indent=1))

    def load(self) -> Embeddings:
        """The entry's arrays, after checking them against the hashes recorded at assembly
        (raises CacheCorrupt); an entry from before hashes were recorded is sealed on first use."""
        try:
            meta = self.meta()
        except (OSError, ValueError) as exc:
            raise CacheCorrupt(f"cache entry {self.dir}: meta.json is unreadable ({exc})") from None
        if "files" not in meta:  # sealed on first use; a read-only shared cache stays as it is
            with contextlib.suppress(OSError):
                atomic_write_text(self.dir / "meta.json", json.dumps({**meta, "files": entry_hashes(self.dir)},
                                                                    indent=1))
        verify_entry(self.dir, meta.get("files"))
        index = json.loads((self.dir / "index.json").read_text())
        features = np.load(self.dir / "features.npy", mmap_mode="r")
        return Embeddings(features, index["paths"], np.asarray(index["valid"], dtype=bool), index["failed"], self.key)

    def meta(self) -> dict:
        return json.loads((self.dir / "meta.json").read_text())

    def load_or_discard(self) -> Embeddings | None:
        """The entry, or None after removing it (with a warning) when it fails its integrity check."""
        try:
            return self.load()
        except (CacheCorrupt, OSError, ValueError) as exc:
            warn(f"{exc}; the entry is removed and rebuilt")
            shutil.rmtree(self.dir, ignore_errors=True)
            return None


def list_entries(base: Path | None = None) -> list[dict]:
    """Every complete entry with its metadata and size on disk, for `hemabench cache ls`."""
    base = base or cache_dir() / "embeddings"
    rows = []
    for folder in sorted(base.glob("*")) if base.is_dir() else []:
        entry = CacheEntry(folder.name, base)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        info = entry.meta() if entry.complete else {"state": "incomplete (resumable)"}
        rows.append({"key": folder.name, "bytes": size, **info})
    return rows


def remove_entries(keys: list[str] | None = None, encoder: str | None = None, dataset: str | None = None,
                   base: Path | None = None) -> list[str]:
    """Delete entries by key prefix or by encoder/dataset name; returns the keys removed."""
    short = [k for k in keys or [] if len(k) < MIN_KEY_PREFIX]
    if short:
        raise HemabenchError(f"cache key prefix {short[0]!r} is too short: give at least {MIN_KEY_PREFIX} characters "
                             "of a key from `hemabench cache ls` (or --all to remove every entry)")
    removed = []
    for row in list_entries(base):
        by_key = keys and any(row["key"].startswith(k) for k in keys)
        by_name = (encoder or dataset) and (encoder in (None, row.get("encoder"))) and (dataset in (None, row.get("dataset")))
        if by_key or by_name:
            shutil.rmtree((base or cache_dir() / "embeddings") / row["key"])
            removed.append(row["key"])
    return removed
