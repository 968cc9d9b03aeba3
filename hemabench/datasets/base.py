"""What every dataset adapter shares: metadata, locating the root, recursive discovery.

An adapter is a small subclass that says where its data lives (``folder``, ``anchor``),
what it should contain (``classes``, ``expected``) and how one relative path becomes a
record (``parse``). Walking the tree, checking images and collecting the files it had
to skip live here once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

import pandas as pd

from hemabench.datasets.records import make_records
from hemabench.errors import DatasetNotFound
from hemabench.images.check import IMAGE_EXTENSIONS, check_image
from hemabench.registry import Registry


class Skip(Exception):
    """Raised by ``parse`` for a file that is an image but cannot become a record."""


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Discovery:
    """The outcome of reading one dataset folder."""

    root: Path
    records: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)
    images: object = None  # where the pixels are (hemabench.datasets.sources); None: files under ``root``
    notes: list[str] = field(default_factory=list)  # what was done about odd data (small classes, ...)

    def image_source(self):
        """The records' images: files under the root, or rows of arrow files."""
        from hemabench.datasets.sources import FolderImages

        return self.images if self.images is not None else FolderImages(self.root)


class DatasetSpec:
    """Base class of dataset adapters; subclasses set the class attributes and ``parse``."""

    name: ClassVar[str]
    title: ClassVar[str]
    folder: ClassVar[str]  # canonical folder name under a data root
    anchor: ClassVar[str] = ""  # sub-path from that folder to where records are rooted
    domain: ClassVar[str]
    layout: ClassVar[str]  # one line shown when the data is missing
    source: ClassVar[str] = ""
    license: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    classes: ClassVar[dict[str, str]]  # canonical label code -> description
    expected: ClassVar[dict[str, int] | None] = None  # published per-label counts
    expected_fine: ClassVar[dict[str, int] | None] = None
    counted_splits: ClassVar[tuple[str, ...] | None] = None  # official parts the published counts cover
    counts_are_exact: ClassVar[bool] = True  # False: copies in the wild differ, report only
    synthetic: ClassVar[bool] = False
    bundled: ClassVar[str] = ""  # folder under hemabench/data/ shipped inside the package (always available)
    ignored_files: ClassVar[frozenset[str]] = frozenset()  # documented sidecar files, not listed as skipped
    # What the records carry, so tasks can say what they need (hemabench.tasks.needs) instead of
    # naming datasets: cell-labels, patients, bag-labels, magnifications, tissue-labels, tumour-subtypes.
    provides: ClassVar[frozenset[str]] = frozenset()
    transfer_source: ClassVar[str | None] = None  # the bone-marrow dataset a blood dataset is paired with
    custom: ClassVar[bool] = False  # a user's own data (folder:, hf:, hf-disk:), never ranked with registered ones

    @property
    def embedded(self) -> bool:
        """Available with no data root: generated (synthetic) or shipped inside the package."""
        return self.synthetic or bool(self.bundled)

    def bundled_folder(self) -> Path:
        """Where the package data of a bundled dataset lies (in a clone, an editable or a wheel install)."""
        return Path(__file__).resolve().parent.parent / "data" / self.bundled

    def parse(self, rel: PurePosixPath) -> dict:
        """Turn a path relative to the root into record fields, or raise Skip(reason)."""
        raise NotImplementedError

    # -- locating ---------------------------------------------------------------------
    def candidates(self, root: Path) -> list[Path]:
        """Where the records root may be, given a folder the user named."""
        anchored = [root / self.folder / self.anchor, root / self.anchor] if self.anchor else []
        return [*anchored, root / self.folder, root]

    def locate(self, root: str | os.PathLike) -> Path:
        """Accept the dataset folder itself, a parent holding it, or its inner anchor."""
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetNotFound(self.missing_message([root]))
        for candidate in self.candidates(root):
            if candidate.is_dir():
                return candidate
        return root

    def missing_message(self, looked: list[Path], why: str = "") -> str:
        places = "\n".join(
            f"  - {p} ({'exists' if p.is_dir() else 'does not exist'})" for p in looked
        ) or "  - nowhere: no --root, --data-root or HEMABENCH_DATA was given"
        return (
            f"dataset {self.name!r} ({self.title}) {why or 'was not found'}.\n"
            f"Looked in:\n{places}\n"
            f"Expected layout: {self.layout}\n"
            f"Provide it with --root DIR (the '{self.folder}' folder or its parent), "
            f"--data-root DIR (a folder holding '{self.folder}/'), or the HEMABENCH_DATA "
            f"environment variable."
        )

    # -- discovery --------------------------------------------------------------------
    def discover(self, root: str | os.PathLike, full_check: bool = False) -> Discovery:
        """Walk the tree under the located root, check every file, build the records."""
        base = self.locate(root)
        rows, skipped = scan_images(base, lambda rel: {"domain": self.domain, **self.parse(rel)}, full_check,
                                    self.ignored_files)
        if not rows:
            raise DatasetNotFound(
                self.missing_message([base], why=f"has no usable image under {base} ({len(skipped)} files skipped)")
            )
        return Discovery(root=base, records=make_records(rows), skipped=skipped)

    def info(self) -> dict:
        """What a result file records about the dataset."""
        return {"title": self.title, "domain": self.domain, "synthetic": self.synthetic}

    def patient_metadata(self, root: Path) -> pd.DataFrame | None:
        """Per-patient clinical metadata shipped beside the images, if the dataset has any."""
        return None

    # -- shared parsing helpers ---------------------------------------------------------
    def class_from_folder(self, folder: str, folder_labels: dict[str, str] | None = None) -> str:
        """Map a class folder name to its label code, or Skip with the expected names."""
        mapping = folder_labels or {code: code for code in self.classes}
        if folder in mapping:
            return mapping[folder]
        raise Skip(f"unknown class folder {folder!r} (expected one of: {', '.join(sorted(mapping))})")


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # os.walk gives undecodable bytes as lone surrogates
        return False
    return True


def escaped(text: str) -> str:
    """A file name printable anywhere: undecodable bytes shown as \\xNN."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


LINKED_FOLDER = "symbolic link to a folder: not followed (copy or move the folder itself here)"


def scan_images(base: Path, parse, full_check: bool = False, ignored: frozenset[str] = frozenset(),
                top_folders: list[str] | None = None) -> tuple[list[dict], list[Skipped]]:
    """The one walk of a dataset folder, shared by the adapters and ``folder:`` data: every file
    below ``base`` becomes a row (``parse(rel)`` -> fields, or ``Skip``) or a skipped file with
    its reason: a file name that is not UTF-8, not an image, an unreadable image, an unreadable
    folder or a linked folder (listed, never followed). ``top_folders``, when given, receives the
    names of the folders directly under ``base`` that the walk read (not linked, not unreadable)."""
    rows: list[dict] = []
    skipped: list[Skipped] = []
    unreadable: list[Skipped] = []
    seen_top: list[str] = []
    for path in _walk_files(base, unreadable, seen_top):
        rel = PurePosixPath(path.relative_to(base).as_posix())
        if not is_utf8(str(rel)):  # ids are UTF-8 text in results: skip and list, never crash
            skipped.append(Skipped(escaped(str(rel)), "file name is not valid UTF-8"))
            continue
        if path.name in ignored:
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(Skipped(str(rel), f"not an image file (extension {path.suffix or 'none'!r})"))
            continue
        problem = check_image(path, full=full_check)
        if problem is None:
            try:
                fields = parse(rel)
            except Skip as exc:
                problem = str(exc)
        if problem is not None:
            skipped.append(Skipped(str(rel), problem))
            continue
        rows.append({**fields, "path": str(rel)})
    skipped += [Skipped(escaped(s.path if s.path == str(base) else str(Path(s.path).relative_to(base))), s.reason)
                for s in unreadable]
    if top_folders is not None:
        refused = {os.path.normpath(s.path) for s in unreadable}
        top_folders += [name for name in seen_top if os.path.normpath(os.path.join(base, name)) not in refused]
    return rows, skipped


def _walk_files(base: Path, unreadable: list[Skipped] | None = None, top: list[str] | None = None):
    """Every regular file below base in a fixed order; symlinked folders are not followed but
    listed, and folders that cannot be read are listed, in ``unreadable`` (never silently dropped).
    ``top`` receives the real (not linked) folders directly under ``base``."""

    def note(error: OSError) -> None:
        if unreadable is not None:
            unreadable.append(Skipped(str(error.filename), f"folder cannot be read ({error.strerror or error})"))

    for dirpath, dirnames, filenames in os.walk(base, onerror=note):
        dirnames.sort()
        for name in dirnames:
            linked = os.path.islink(os.path.join(dirpath, name))
            if unreadable is not None and linked:
                unreadable.append(Skipped(os.path.join(dirpath, name), LINKED_FOLDER))
            if top is not None and not linked and os.path.normpath(dirpath) == os.path.normpath(base):
                top.append(name)
        for name in sorted(filenames):
            yield Path(dirpath) / name


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(cls: type[DatasetSpec]) -> type[DatasetSpec]:
    """Class decorator: instantiate the adapter and register it under its name."""
    DATASETS.add(cls.name, cls())
    return cls
