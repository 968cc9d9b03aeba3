"""Finding a dataset: --root, then --data-root, then HEMABENCH_DATA; synthetic ones are generated,
bundled ones (a sample shipped inside the package) are always there."""

from __future__ import annotations

import os
from pathlib import Path

from hemabench.datasets.base import DatasetSpec, Discovery
from hemabench.errors import DatasetNotFound


def data_roots(data_root: str | os.PathLike | None = None) -> list[Path]:
    """Folders that hold datasets under their canonical names, in the order searched."""
    roots = [Path(data_root).expanduser()] if data_root else []
    env = os.environ.get("HEMABENCH_DATA", "")
    roots += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return roots


def find_root(spec: DatasetSpec, root=None, data_root=None) -> Path:
    """The records root of a dataset, or DatasetNotFound saying where we looked."""
    if spec.custom:  # its location is part of its name
        return spec.locate()
    if root is not None:
        return spec.locate(root)
    if spec.synthetic:
        return spec.ensure()
    if spec.bundled:
        return spec.locate(spec.bundled_folder())
    looked = [base / spec.folder for base in data_roots(data_root)]
    for candidate in looked:
        if candidate.is_dir():
            return spec.locate(candidate)
    raise DatasetNotFound(spec.missing_message(looked))


def where_looked(spec: DatasetSpec, data_root=None) -> tuple[str, bool]:
    """For `list datasets`: the first place the dataset was found, or all places looked."""
    if spec.synthetic:
        folder = spec.generated_folder()
        return (str(folder) if folder.is_dir() else "generated on first use"), True
    if spec.bundled:
        return str(spec.bundled_folder()), spec.bundled_folder().is_dir()
    looked = [base / spec.folder for base in data_roots(data_root)]
    for candidate in looked:
        if candidate.is_dir():
            return str(candidate), True
    return (", ".join(map(str, looked)) or "no data root set"), False


def load_dataset(name: str, root=None, data_root=None, full_check: bool = False) -> Discovery:
    from hemabench.datasets.resolve import get_dataset

    spec = get_dataset(name)
    return spec.discover(find_root(spec, root, data_root), full_check=full_check)
