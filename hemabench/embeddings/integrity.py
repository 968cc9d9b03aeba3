"""Integrity of the embedding cache: a sha256 per chunk and for the assembled entry, and a lock.

A truncated or bit-flipped chunk, or an edited ``features.npy`` (even a single inf), must never
be served as "(cache)". Each chunk gets a ``.sha256`` sidecar when written; a chunk whose bytes
no longer match is deleted and recomputed. The assembled entry records the size and sha256 of
``features.npy`` and ``index.json`` in ``meta.json``; loading checks the size every time and
the hashes once per process (cheap: one sequential read), and a bad entry is rebuilt. Both
cases print a warning naming the file.

Two ``extract`` processes of the same entry (outside torchrun) take an exclusive file lock on
the entry: the second waits for the first, then reuses its entry instead of racing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from hemabench.errors import HemabenchError
from hemabench.files.atomic import atomic_write_text
from hemabench.files.filehash import file_sha256 as read_sha256

_HASHED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, hashed in this process


class CacheCorrupt(HemabenchError):
    """A cache entry's files do not match the hashes recorded when it was written."""


def warn(message: str) -> None:
    print(f"hemabench: warning: {message}", file=sys.stderr)


def file_sha256(path: Path) -> str:
    """The file's sha256, read once per process and file version (path, size, mtime): a chunk
    sealed, then checked before assembly, or an entry recorded, then loaded, is hashed once."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = read_sha256(path)
    return _HASHED[key]


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def seal(path: Path) -> None:
    """Record ``path``'s size and sha256 beside it (written after the file itself is in place)."""
    atomic_write_text(sidecar(path), f"{file_sha256(path)} {path.stat().st_size}\n")


def intact(path: Path) -> bool:
    """True when ``path`` and its sidecar exist and agree; a bad pair is removed with a warning."""
    if not path.is_file():
        return False
    try:
        sha, size = sidecar(path).read_text().split()
        ok = int(size) == path.stat().st_size and sha == file_sha256(path)
    except (OSError, ValueError):
        ok = False
    if not ok:
        warn(f"cache chunk {path} does not match its recorded sha256 (truncated, altered or from an older "
             "hemabench): it is recomputed")
        for bad in (path, sidecar(path)):
            bad.unlink(missing_ok=True)
    return ok


def entry_hashes(folder: Path) -> dict:
    """What ``meta.json`` records about an assembled entry."""
    return {name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
            for name in ("features.npy", "index.json")}


def verify_entry(folder: Path, recorded: dict | None) -> None:
    """Raise CacheCorrupt when the entry's files differ from ``recorded`` (sizes always, hashes
    once per process and file version)."""
    if not recorded:
        return
    for name, want in recorded.items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            raise CacheCorrupt(f"cache entry {folder}: {name} is missing") from None
        if stat.st_size != want.get("bytes"):
            raise CacheCorrupt(f"cache entry {folder}: {name} has {stat.st_size} bytes, {want.get('bytes')} recorded")
        if file_sha256(path) != want.get("sha256"):
            raise CacheCorrupt(f"cache entry {folder}: {name} does not match its recorded sha256 (altered)")


@contextlib.contextmanager
def entry_lock(folder: Path, exclusive: bool = True) -> Iterator[None]:
    """An exclusive lock on one cache entry (``locks/<key>.lock`` beside the cache folder, so that
    listing or removing entries never meets it); waits for a holder."""
    if not exclusive:
        yield
        return
    lock = folder.parent.parent / "locks" / f"{folder.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            warn(f"another hemabench process is extracting {folder.name}; waiting for it, then reusing its entry")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
