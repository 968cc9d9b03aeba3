"""A user's own data: ``folder:PATH``, ``hf:OWNER/NAME[@REV][:CONFIG]`` or ``hf-disk:PATH``.

A folder holds one sub-folder per class (any depth below it), or a ``metadata.csv`` /
``metadata.parquet`` beside the images with ``file_name,label`` and optional ``patient`` and
``bag_label``. Hugging Face datasets are read from their arrow files (see ``hf``). Either
way the result is an ordinary ``Discovery``: records, the files skipped and why, and notes on
what was done about odd data. Results are named ``custom-<name>`` and never ranked with the
registered datasets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from hemabench.datasets.base import DatasetSpec, Discovery, Skip, Skipped, escaped, scan_images
from hemabench.datasets.records import make_records
from hemabench.datasets.sources import safe_relative
from hemabench.errors import DatasetNotFound, HemabenchError
from hemabench.images.check import check_image

KINDS = ("folder", "hf", "hf-disk")
METADATA_FILES = ("metadata.csv", "metadata.parquet")


@dataclass(frozen=True)
class Columns:
    """Column names in a metadata sheet or a Hugging Face dataset (None: the kind's default)."""

    image: str | None = None  # default: file_name in a metadata sheet, image in a HF dataset
    label: str = "label"
    patient: str = "patient"
    bag_label: str = "bag_label"


def is_custom(text: str) -> bool:
    return any(str(text).startswith(f"{kind}:") for kind in KINDS)


def absolute_text(text: str) -> str:
    """The same dataset text with an absolute folder (a hub name stays as it is)."""
    kind, _, location = text.partition(":")
    path = Path(location).expanduser()
    if kind == "hf" and not path.exists():
        return text
    return f"{kind}:{path.absolute()}"


def custom_name(text: str) -> str:
    """``custom-<name>``: the folder's name, or the Hugging Face dataset's name (and config)."""
    kind, _, location = text.partition(":")
    if kind == "hf":
        repo, _, config = location.partition(":")
        stem = repo.split("@", 1)[0].rstrip("/").split("/")[-1] + (f"-{config}" if config else "")
    else:
        stem = Path(location).expanduser().resolve().name
    return "custom-" + (re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.") or "data")


class CustomDataset(DatasetSpec):
    """One user dataset; discovered once, on first need (what it provides depends on its columns)."""

    custom = True
    domain = "custom"
    license = "the user's own"

    def __init__(self, text: str, columns: Columns | None = None, split: str | None = None) -> None:
        kind, _, location = text.partition(":")
        if kind not in KINDS or not location:
            raise HemabenchError(f"{text!r}: expected folder:PATH, hf:OWNER/NAME[@REVISION][:CONFIG] or hf-disk:PATH")
        text = absolute_text(text)
        location = text.partition(":")[2]
        self.text, self.kind, self.location = text, kind, location
        self.name = custom_name(text)
        self.title = f"your data ({text})"
        self.folder = self.name
        self.layout = ("<class>/.../<image> or metadata.csv/metadata.parquet (file_name,label[,patient][,bag_label])"
                       if kind == "folder" else "a datasets.Dataset with image and label columns")
        self.columns = columns or Columns()
        self.chosen_split = split
        self._discoveries: dict[bool, Discovery] = {}

    def locate(self, root=None) -> Path:
        return Path(self.location).expanduser() if self.kind != "hf" else Path(".")

    def discover(self, root=None, full_check: bool = False) -> Discovery:
        """Read the data once (``root`` is ignored: the location is part of the name)."""
        if full_check not in self._discoveries:
            if self.kind == "folder":
                discovery = discover_folder(self.locate(), self.columns, full_check, self.text)
            else:
                from hemabench.datasets.hf import discover_hf

                discovery = discover_hf(self.kind, self.location, self.columns, full_check, self.text)
            discovery.notes[:0] = bag_notes(discovery.records)
            self._discoveries[full_check] = discovery
        return self._discoveries[full_check]

    @property
    def provides(self) -> frozenset[str]:
        records = self.discover().records
        found = {"cell-labels"}
        if records["patient"].notna().all():
            found.add("patients")
            if records["bag_label"].notna().all() and not bag_notes(records):
                found.add("bag-labels")
        return frozenset(found)

    def class_problem(self) -> str | None:
        """Why no task can run (every task compares classes, trained on some images and tested on
        others: two classes with two images each at least), or None. One class once ended in a
        traceback from the probe."""
        counts = self.discover().records["label"].value_counts()
        if (counts >= 2).sum() >= 2:
            return None
        if len(counts) == 1:
            return (f"{self.text} has one class ({counts.index[0]!r}, {counts.iloc[0]} images): every task compares "
                    "two or more classes")
        return (f"{self.text} has {len(counts)} classes but {(counts >= 2).sum()} with two or more images: every task "
                "needs at least two classes of two images each (one to train on, one to test)")

    def info(self) -> dict:
        notes = self.discover().notes
        return {**super().info(), "custom": True, "source": self.text, **({"notes": notes} if notes else {})}

    def note_split(self, split) -> list[str]:
        """Notes on a materialised split (small classes), kept for the result and returned for printing."""
        notes = [n for n in split_notes(split) if n not in self.discover().notes]
        self.discover().notes.extend(notes)
        return notes


def bag_notes(records: pd.DataFrame) -> list[str]:
    """A bag label must be one per patient; say why bag tasks are off when it is not."""
    if records["bag_label"].isna().all():
        return []
    if records["patient"].isna().any():
        return ["bag labels given without a patient for every image: bag tasks (aml-mil) are not run"]
    mixed = records.groupby("patient")["bag_label"].nunique(dropna=False)
    if (mixed > 1).any():
        return [f"patients {sorted(mixed.index[mixed > 1])[:5]} have several bag labels: bag tasks (aml-mil) are not run"]
    return []


def split_notes(split) -> list[str]:
    """Classes with fewer groups (images, or patients) than the split has parts, and what that means."""
    table = split.assignment
    column = split.rule.stratify
    unit = "patient" if table["patient"].notna().all() else "image"
    groups = table.drop_duplicates("patient") if unit == "patient" else table
    parts = split.rule.parts()
    notes = []
    for label, members in groups.groupby(column):
        if len(members) < len(parts):
            present = sorted(set(members["part"]))
            notes.append(f"{split.rule.id}: class {label!r} has {len(members)} {unit}(s), fewer than the {len(parts)} "
                         f"parts: kept, in {', '.join(present)} only (it is never tested in the other parts)")
    return notes


# -- image folders -------------------------------------------------------------------------------
def discover_folder(root: Path, columns: Columns, full_check: bool, text: str) -> Discovery:
    if not root.is_dir():
        raise DatasetNotFound(f"{text}: no such folder {root}")
    sheets = [root / name for name in METADATA_FILES if (root / name).is_file()]
    if sheets:
        rows, skipped = _rows_from_sheet(root, sheets[0], columns, full_check)
    else:
        rows, skipped = _rows_from_class_folders(root, full_check)
    if not rows:
        first = f"; first: {skipped[0].path}: {skipped[0].reason}" if skipped else ""
        raise DatasetNotFound(f"{text}: no usable image under {root} ({len(skipped)} files skipped{first})")
    notes = [f"{s.path}: {s.reason}" for s in skipped if s.reason.startswith("empty class")]
    return Discovery(root=root, records=make_records(rows), skipped=skipped, notes=notes)


def _rows_from_class_folders(root: Path, full_check: bool) -> tuple[list[dict], list[Skipped]]:
    def parse(rel: PurePosixPath) -> dict:
        if len(rel.parts) < 2:
            raise Skip("file directly under the root; expected <class>/<image>")
        return {"label": rel.parts[0], "domain": CustomDataset.domain}

    folders: list[str] = []  # the class folders the one walk read (not linked, not unreadable)
    rows, skipped = scan_images(root, parse, full_check, top_folders=folders)
    used = {row["label"] for row in rows}
    for folder in sorted(name for name in folders if not name.startswith(".")):
        if folder not in used:
            skipped.append(Skipped(f"{escaped(folder)}/", "empty class folder (no usable image): the class is left out"))
    return rows, skipped


def _read_sheet(sheet: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(sheet, dtype=str, keep_default_na=False) if sheet.suffix == ".csv" else pd.read_parquet(sheet)
    except Exception as exc:  # noqa: BLE001 - any reader failure is one line naming the file
        raise HemabenchError(f"{sheet}: cannot read the metadata sheet ({str(exc).splitlines()[0]})") from None
    return table


def _rows_from_sheet(root: Path, sheet: Path, columns: Columns, full_check: bool) -> tuple[list[dict], list[Skipped]]:
    """Rows of the sheet, read column by column (a 200,000-row sheet once took 32 s row by row);
    only the file checks are per row."""
    table = _read_sheet(sheet)
    image = columns.image or "file_name"
    for what, column, option in (("file name", image, "--image-column"), ("label", columns.label, "--label-column")):
        if column not in table.columns:
            raise HemabenchError(f"{sheet}: no {what} column {column!r} (columns: {', '.join(map(str, table.columns))}); "
                                 f"name it with {option}")
    rels = _column_text(table[image]).str.replace("\\", "/", regex=False)
    labels = _column_text(table[columns.label])
    problem = pd.Series([None] * len(table), index=table.index, dtype=object)
    problem[~rels.map(safe_relative)] = "not a plain relative path inside the dataset folder"
    problem[problem.isna() & (labels == "")] = "no label"
    ok = problem.isna()
    problem[ok & rels.where(ok).duplicated()] = f"listed twice in {sheet.name}"
    todo = np.flatnonzero(problem.isna().to_numpy())
    paths = [os.path.join(root, rel) for rel in rels.to_numpy()[todo]]  # strings: pathlib costs more than the stat
    missing = f"listed in {sheet.name} but not found"
    problem.iloc[todo] = [check_image(path, full=full_check) if os.path.isfile(path) else missing
                          for path in paths]  # the file checks: one stat and one header read per listed image
    keep = problem.isna()
    optional = {key: _column_text(table[col]).where(lambda v: v != "", None)
                for key, col in {"patient": columns.patient, "bag_label": columns.bag_label}.items() if col in table.columns}
    frame = pd.DataFrame({"path": rels[keep], "label": labels[keep], "domain": CustomDataset.domain,
                          **{key: values[keep] for key, values in optional.items()}})
    skipped = [Skipped(rel or "<empty file_name>", reason) for rel, reason in zip(rels[~keep], problem[~keep])]
    return frame.to_dict("records"), skipped


def _column_text(values: pd.Series) -> pd.Series:
    """A sheet column as stripped text; missing cells become ''."""
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()
