"""One lookup for every dataset name: a registered dataset, or a user's own (``folder:``, ``hf:``, ``hf-disk:``).

A custom dataset is built once per process from its text and then answers to both that text
and its ``custom-<name>``, so a run, its splits and its result files all agree on it.
"""

from __future__ import annotations

from hemabench.datasets.base import DATASETS, DatasetSpec
from hemabench.datasets.custom import Columns, CustomDataset, absolute_text, is_custom
from hemabench.errors import HemabenchError

_CUSTOM: dict[str, CustomDataset] = {}


def get_dataset(name: str, columns: Columns | None = None, split: str | None = None) -> DatasetSpec:
    """The dataset called ``name``; UnknownName (listing the registered ones) otherwise."""
    if name in DATASETS:
        return DATASETS.get(name)
    known = _CUSTOM.get(name) or (_CUSTOM.get(absolute_text(name)) if is_custom(name) else None)
    if known is not None and (columns is None or columns == known.columns):
        if split is not None:  # a later command line's --split
            known.chosen_split = split
        return known
    if not is_custom(name):
        return DATASETS.get(name)
    spec = CustomDataset(name, columns, split)  # new, or read again with other column names
    other = _CUSTOM.get(spec.name)
    if other is not None and other.text != spec.text:
        raise HemabenchError(f"{name} and {other.text} would both be named {spec.name}: rename one folder")
    _CUSTOM[name] = _CUSTOM[spec.text] = _CUSTOM[spec.name] = spec
    return spec


def dataset_name(name: str, columns: Columns | None = None, split: str | None = None) -> str:
    """The name results use: a registered name, or ``custom-<name>`` for ``folder:``/``hf:`` text."""
    return get_dataset(name, columns, split).name


def forget_custom() -> None:
    """Drop the custom datasets seen in this process (tests that rebuild a folder)."""
    _CUSTOM.clear()
