"""Records: the one table every task starts from (one row per image).

Columns are fixed so that splits, caches and result files can rely on them:
``path`` is relative to the dataset root (POSIX separators), ``label`` is the
canonical class code, ``bag_label`` the label of the record's patient (bag tasks),
the other columns are null where a dataset lacks them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

RECORD_COLUMNS = ("path", "label", "fine_label", "patient", "bag_label", "domain", "magnification", "official_split")


def make_records(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Build the canonical records table: fixed columns, sorted by path, unique paths."""
    frame = pd.DataFrame(list(rows), columns=list(RECORD_COLUMNS))
    frame = frame.astype(object).where(frame.notna(), None)
    if frame["path"].isna().any() or frame["label"].isna().any():
        raise ValueError("every record needs a path and a label")
    duplicated = frame["path"][frame["path"].duplicated()]
    if len(duplicated):
        raise ValueError(f"duplicate record paths: {sorted(duplicated)[:5]}")
    return frame.sort_values("path", kind="stable").reset_index(drop=True)


def group_keys(records: pd.DataFrame) -> pd.Series:
    """The unit that must never be split across parts: the patient where known, else the image."""
    return records["patient"].where(records["patient"].notna(), "file:" + records["path"])
