"""Where a record's pixels are: a file under the dataset root, or a row of an arrow file.

Extraction, the embedding cache and the leaderboard's thumbnails only ever ask a source to
``open`` a record path and to ``digest`` the record list, so they work the same for an
image folder and for a Hugging Face dataset whose images are stored inside arrow files.
An arrow source holds file names, not tables: it pickles small into DataLoader workers,
which memory-map the files and decode each image once, there.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from hemabench.errors import HemabenchError
from hemabench.files.filehash import file_sha256

KEY_MODES = ("stat", "content")


def key_mode() -> str:
    """How image files enter the key: ``stat`` (size and modification time in ns, the default:
    one stat per image) or ``content`` (sha256 of every file's bytes: reads the whole dataset),
    chosen by ``$HEMABENCH_CACHE_KEY``."""
    mode = os.environ.get("HEMABENCH_CACHE_KEY", "stat") or "stat"
    if mode not in KEY_MODES:
        raise HemabenchError(f"HEMABENCH_CACHE_KEY={mode!r}: one of {', '.join(KEY_MODES)}")
    return mode


def records_digest(root: Path, paths: Iterable[str], mode: str | None = None) -> str:
    """sha256 over every record, in order: its relative path with its size and modification
    time (``stat``), or with the sha256 of its bytes (``content``). An image rewritten in place
    (same size) once kept its old embedding: its mtime now changes the key; ``content`` also
    covers a rewrite that restores the old mtime."""
    mode = mode or key_mode()
    digest = hashlib.sha256(f"files\t{mode}\n".encode())
    for rel in paths:
        if mode == "content":
            digest.update(f"{rel}\t{file_sha256(root / rel)}\n".encode())
        else:
            info = (root / rel).stat()
            digest.update(f"{rel}\t{info.st_size}\t{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class FolderImages:
    """Record paths are files relative to ``root``; the cache key hashes (path, size, mtime) or content."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def open(self, rel: str) -> Image.Image:
        return Image.open(self.root / rel)

    def digest(self, paths: Iterable[str]) -> str:
        return records_digest(self.root, paths)

    def describe(self) -> str:
        return str(self.root)


class ArrowImages:
    """Record paths are ``<file key>/<row>``: a row of one of the dataset's arrow files.

    ``files`` maps each key to its arrow file; ``fingerprint`` is the dataset's own
    fingerprint (``datasets``), so the cache key is (fingerprint, rows), as (path, size) is
    for files."""

    def __init__(self, files: dict[str, str], column: str, fingerprint: str) -> None:
        self.files, self.column, self.fingerprint = dict(files), column, fingerprint
        self._tables: dict[str, object] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tables": {}}  # workers memory-map the files themselves

    def locate(self, rel: str) -> tuple[str, int]:
        """(arrow file, row) of a record path; ValueError for a path this source did not make."""
        key, _, row = str(rel).rpartition("/")
        if key not in self.files or not row.isdigit():
            raise ValueError(f"{rel!r} is not a row of this dataset's arrow files")
        return self.files[key], int(row)

    def column_of(self, key: str):
        """The image column of one arrow file, memory-mapped (opened once per process)."""
        from datasets.table import MemoryMappedTable

        filename = self.files[key]
        if filename not in self._tables:
            self._tables[filename] = MemoryMappedTable.from_file(filename).table.column(self.column)
        return self._tables[filename]

    def cell(self, rel: str):
        """The stored value of the image column for one record (bytes, or {bytes, path})."""
        self.locate(rel)
        key, _, row = str(rel).rpartition("/")
        return self.column_of(key)[int(row)].as_py()

    def open(self, rel: str) -> Image.Image:
        return Image.open(io.BytesIO(image_bytes(self.cell(rel))))

    def digest(self, paths: Iterable[str]) -> str:
        digest = hashlib.sha256(f"arrow\t{self.fingerprint}\t{self.column}\n".encode())
        for key, filename in sorted(self.files.items()):  # an arrow file rewritten in place changes the key too
            info = Path(filename).stat()
            digest.update(f"{key}\t{info.st_size}\t{info.st_mtime_ns}\n".encode())
        for rel in paths:
            digest.update(f"{rel}\n".encode())
        return digest.hexdigest()

    def describe(self) -> str:
        return f"{len(self.files)} arrow file(s), column {self.column!r}, fingerprint {self.fingerprint}"


def image_bytes(value) -> bytes:
    """The encoded image of one cell of an image column; ValueError when there is none."""
    if isinstance(value, dict):  # the datasets Image feature: {bytes, path}
        if value.get("bytes"):
            return value["bytes"]
        path = value.get("path")
        if path and Path(path).is_absolute() and Path(path).is_file():
            return Path(path).read_bytes()
        raise ValueError("the image cell holds no bytes and no readable path")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise ValueError(f"the image cell holds {type(value).__name__}, not image bytes")


def safe_relative(rel: str) -> bool:
    """A plain relative record path (no absolute path, no '..'): the only kind a source opens for a page."""
    return isinstance(rel, str) and bool(rel) and "\\" not in rel and not rel.startswith("/") \
        and ".." not in rel.split("/")  # string tests: PurePosixPath's parsing cost 30 us a row on large sheets
