"""Hugging Face datasets as custom datasets: images stored inside arrow files, not as files.

``hf:OWNER/NAME[@REVISION][:CONFIG]`` goes through ``datasets.load_dataset`` (a hub name, or
a local folder of parquet/arrow/image files, since the hub may be unreachable);
``hf-disk:PATH`` reads a dataset written by ``save_to_disk``. Every split is read; a record's
path is ``[<split>/]<arrow file stem>/<row>``, so its source is an (arrow file, row) reference.
Discovery checks each image's header from its bytes (no pixel decoding: that happens once,
in the DataLoader workers); rows that are not images are skipped and listed.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from hemabench.datasets.base import Discovery, Skipped
from hemabench.datasets.records import make_records
from hemabench.datasets.sources import ArrowImages, image_bytes
from hemabench.errors import DatasetNotFound, HemabenchError


def parse_hub_name(location: str) -> tuple[str, str | None, str | None]:
    """``owner/name[@revision][:config]`` -> (path, revision, config)."""
    path, revision, config = location, None, None
    if ":" in path.rsplit("/", 1)[-1]:
        path, config = path.rsplit(":", 1)
    if "@" in path.rsplit("/", 1)[-1]:
        path, revision = path.rsplit("@", 1)
    return path, revision, config


def load_splits(kind: str, location: str, text: str) -> dict[str, object]:
    """split name -> datasets.Dataset; any loading failure is one line (offline: no traceback)."""
    import datasets

    try:
        if kind == "hf-disk":
            if not Path(location).expanduser().is_dir():
                raise DatasetNotFound(f"{text}: no such folder {location} (expected a folder written by save_to_disk)")
            loaded = datasets.load_from_disk(str(Path(location).expanduser()))
        else:
            path, revision, config = parse_hub_name(location)
            with _quiet_hub():  # its retry warnings would bury the one line said below
                loaded = datasets.load_dataset(path, name=config, revision=revision)
    except DatasetNotFound:
        raise
    except Exception as exc:  # noqa: BLE001 - hub, network and format errors all end in one line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        hint = "" if kind == "hf-disk" else (" (the hub may be unreachable: save the dataset with save_to_disk where "
                                             "it is reachable and use hf-disk:PATH, or give a local folder)")
        raise DatasetNotFound(f"{text}: cannot load the dataset: {type(exc).__name__}: {reason}{hint}") from None
    if isinstance(loaded, datasets.Dataset):
        return {"": loaded}
    return dict(loaded)


@contextmanager
def _quiet_hub():
    import logging

    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "datasets")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _labels(ds, column: str) -> list:
    import datasets

    values = ds.data.column(column).to_pylist()
    feature = ds.features[column]
    if isinstance(feature, datasets.ClassLabel):
        return [None if v is None or v < 0 else feature.int2str(v) for v in values]
    return values


def _check(value, full: bool) -> str | None:
    """None for a readable image cell, else why not."""
    try:
        data = image_bytes(value)
    except ValueError as exc:
        return str(exc)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load() if full else image.verify()
    except UnidentifiedImageError:
        return "not an image (content is no known image format)"
    except Exception as exc:  # noqa: BLE001 - any decoder failure is reported per row
        return f"unreadable image: {exc}"
    return None


def _require(ds, column: str, what: str, option: str, text: str, split: str) -> None:
    if column not in ds.column_names:
        where = f" split {split!r}" if split else ""
        raise HemabenchError(f"{text}:{where} no {what} column {column!r} (columns: {', '.join(ds.column_names)}); "
                             f"name it with {option}")


def discover_hf(kind: str, location: str, columns, full_check: bool, text: str) -> Discovery:
    splits = load_splits(kind, location, text)
    image_column = columns.image or "image"
    rows, skipped, files, fingerprints = [], [], {}, []
    for split, ds in splits.items():
        _require(ds, image_column, "image", "--image-column", text, split)
        _require(ds, columns.label, "label", "--label-column", text, split)
        if not ds.cache_files:
            raise HemabenchError(f"{text}: split {split or 'data'!r} is held in memory, not in arrow files: "
                                 "save it with save_to_disk and use hf-disk:PATH")
        if ds._indices is not None:
            ds = ds.flatten_indices()
        labels = _labels(ds, columns.label)
        optional = {key: _labels(ds, col) for key, col in (("patient", columns.patient),
                                                           ("bag_label", columns.bag_label)) if col in ds.column_names}
        fingerprints.append(f"{split}:{ds._fingerprint}")
        offset = 0
        for cache in ds.cache_files:
            key = f"{split}/{Path(cache['filename']).stem}" if split else Path(cache["filename"]).stem
            files[key] = cache["filename"]
            source = ArrowImages({key: cache["filename"]}, image_column, "")
            column = source.column_of(key)
            for row in range(len(column)):
                rel, index = f"{key}/{row:06d}", offset + row
                problem = _check(column[row].as_py(), full_check)
                if problem is None and (labels[index] is None or str(labels[index]).strip() == ""):
                    problem = "no label"
                if problem is not None:
                    skipped.append(Skipped(rel, problem))
                    continue
                extra = {k: (None if v[index] is None else str(v[index])) for k, v in optional.items()}
                rows.append({"path": rel, "label": str(labels[index]), "domain": "custom",
                             "official_split": split or None, **extra})
            offset += len(column)
    if not rows:
        reasons = {s.reason for s in skipped}
        if reasons and all(r.startswith(("not an image", "the image cell")) for r in reasons):
            raise HemabenchError(f"{text}: column {image_column!r} holds no image ({skipped[0].reason}); "
                                 "name the image column with --image-column")
        first = f"; first: {skipped[0].path}: {skipped[0].reason}" if skipped else ""
        raise DatasetNotFound(f"{text}: no usable image ({len(skipped)} rows skipped{first})")
    fingerprint = hashlib.sha256("\n".join(fingerprints).encode()).hexdigest()
    images = ArrowImages(files, image_column, fingerprint)
    root = Path(location).expanduser() if kind == "hf-disk" else Path(files[next(iter(files))]).parent
    return Discovery(root=root, records=make_records(rows), skipped=skipped, images=images)
