"""Compare what was found on disk with what the dataset's publication says."""

from __future__ import annotations

import pandas as pd

from hemabench.datasets.base import DatasetSpec, Discovery


def _compare(found: dict[str, int], expected: dict[str, int] | None) -> list[dict]:
    if not expected:
        return []
    rows = []
    for label in sorted(set(expected) | set(found)):
        f, e = found.get(label, 0), expected.get(label)
        if e is None or f != e:
            rows.append({"label": label, "found": f, "expected": e, "difference": None if e is None else f - e})
    return rows


def _broken_down(counted: pd.DataFrame, expected_fine: dict[str, int] | None) -> pd.DataFrame:
    """The records of classes the publication counts by fine label.

    A class without a published breakdown (Acevedo's basophils: fine label BA, class BAS) has
    fine labels that merely restate it; its count is already checked as a class.
    """
    if not expected_fine:
        return counted
    broken = set(counted.loc[counted["fine_label"].isin(list(expected_fine)), "label"])
    return counted[counted["label"].isin(broken)]


def _value_counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.dropna().value_counts().sort_index().items()}


def verify_report(spec: DatasetSpec, discovery: Discovery) -> dict:
    """The JSON object printed by ``hemabench data verify --json``."""
    records = discovery.records
    counted = records
    if spec.counted_splits:
        counted = records[records["official_split"].isin(spec.counted_splits)]
    classes = _value_counts(records["label"])
    differences = _compare(_value_counts(counted["label"]), spec.expected)
    fine_differences = _compare(_value_counts(_broken_down(counted, spec.expected_fine)["fine_label"]),
                                spec.expected_fine)
    warnings = [
        f"class {d['label']}: found {d['found']}, published {d['expected']}"
        + (f" ({d['difference']:+d})" if d["difference"] is not None else " (not in the publication)")
        for d in differences + fine_differences
    ]
    warnings += discovery.notes  # what was done about odd data (a user's own datasets)
    if discovery.skipped:
        warnings.append(f"{len(discovery.skipped)} files skipped (see 'skipped')")
    report = {
        "dataset": spec.name,
        "root": str(discovery.root),
        "usable": len(records) > 0,
        "n_images": int(len(records)),
        "classes": classes,
        "fine_labels": _value_counts(records["fine_label"]),
        "expected": spec.expected,
        "expected_fine": spec.expected_fine,
        "counts_are_exact": spec.counts_are_exact,
        "differences": differences + fine_differences,
        "skipped": [{"path": s.path, "reason": s.reason} for s in discovery.skipped],
        "warnings": warnings,
    }
    if records["patient"].notna().any():
        report["patients"] = _value_counts(records.drop_duplicates("patient")["label"])
    if records["official_split"].notna().any():
        report["official_splits"] = {
            str(split): _value_counts(group["label"]) for split, group in records.groupby("official_split")
        }
    if records["magnification"].notna().any():
        report["magnifications"] = _value_counts(records["magnification"].astype(int).astype(str))
    return report
