"""Split rules: deterministic, stable, stratified, patient-disjoint, fingerprinted."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from hemabench.datasets.records import make_records
from hemabench.splits import MaterialisedSplit, SplitRule, fingerprint, get_rule

HOLDOUT = SplitRule(name="holdout-80-20", kind="holdout", fractions={"train": 0.8, "test": 0.2})
KFOLD = SplitRule(name="cv5", kind="kfold", k=5)


def cells(n_per_class: dict[str, int], patients: int | None = None) -> pd.DataFrame:
    rows = []
    for label, n in n_per_class.items():
        for i in range(n):
            patient = f"P{label}{i % patients}" if patients else None
            rows.append({"path": f"{label}/{label}_{i:05d}.jpg", "label": label, "patient": patient})
    return make_records(rows)


def assign(rule, records) -> dict[str, str]:
    return dict(zip(records["path"], rule.assign(records)))


@pytest.mark.parametrize("rule", [HOLDOUT, KFOLD])
def test_order_of_records_does_not_matter(rule):
    records = cells({"A": 300, "B": 120, "C": 9})
    shuffled = records.sample(frac=1, random_state=3).reset_index(drop=True)
    assert assign(rule, records) == assign(rule, shuffled)


@pytest.mark.parametrize("rule", [HOLDOUT, KFOLD])
def test_adding_or_removing_files_moves_no_other_file(rule):
    records = cells({"A": 300, "B": 120})
    before = assign(rule, records)
    extra = make_records([{"path": f"A/new_{i}.jpg", "label": "A"} for i in range(5)])
    changed = pd.concat([records.iloc[7:], extra]).reset_index(drop=True)
    after = assign(rule, changed)
    common = set(before) & set(after)
    assert len(common) == len(records) - 7
    assert all(before[p] == after[p] for p in common)


def test_holdout_is_stratified_in_every_class():
    records = cells({"A": 1000, "B": 400, "C": 150})
    parts = pd.Series(assign(HOLDOUT, records))
    for label in "ABC":
        test_share = (parts[parts.index.str.startswith(label)] == "test").mean()
        assert abs(test_share - 0.2) < 0.07, (label, test_share)


def test_tiny_classes_get_every_part():
    records = cells({"A": 200, "TINY": 2, "THREE": 3})
    parts = pd.Series(assign(HOLDOUT, records))
    assert set(parts[parts.index.str.startswith("TINY")]) == {"train", "test"}
    folds = pd.Series(assign(KFOLD, records))
    assert folds[folds.index.str.startswith("THREE")].nunique() == 3


@pytest.mark.parametrize("rule", [HOLDOUT, KFOLD])
def test_no_patient_in_two_parts(rule):
    records = cells({"A": 400, "B": 200}, patients=30)
    split = MaterialisedSplit.build("toy", rule, records)
    assert split.patient_overlap() == {}
    assert split.assignment.groupby("patient")["part"].nunique().max() == 1
    assert split.assignment["part"].nunique() == len(rule.parts())


def test_rotations_use_each_fold_once_as_test_and_as_validation():
    rule = get_rule("aml-hehr")
    rotations = rule.rotations()
    assert len(rotations) == 5
    assert sorted(r["test"][0] for r in rotations) == rule.parts()
    assert sorted(r["val"][0] for r in rotations) == rule.parts()
    for r in rotations:
        assert len(r["train"]) == 3 and not set(r["train"]) & set(r["val"] + r["test"])


def test_official_split_maps_folders_and_refuses_unknown_ones():
    records = make_records([
        {"path": "Train/a.jpg", "label": "A", "official_split": "Train"},
        {"path": "TestA/b.jpg", "label": "A", "official_split": "TestA"},
    ])
    rule = get_rule("raabin", "official")
    assert list(rule.assign(records)) == ["test", "train"]
    odd = make_records([{"path": "Val/c.jpg", "label": "A", "official_split": "Val"}])
    with pytest.raises(ValueError, match="Val"):
        rule.assign(odd)


def test_fingerprint_is_sha256_of_sorted_pairs():
    paths, parts = pd.Series(["b.jpg", "a.jpg"]), pd.Series(["test", "train"])
    expected = hashlib.sha256(b"a.jpg\ttrain\nb.jpg\ttest\n").hexdigest()
    assert fingerprint(paths, parts) == expected
    assert fingerprint(paths, pd.Series(["train", "train"])) != expected


def test_manifest_round_trip_and_detects_a_moved_file(tmp_path):
    records = cells({"A": 50, "B": 50})
    split = MaterialisedSplit.build("toy", HOLDOUT, records)
    manifest = tmp_path / "m.json"
    split.write_manifest(manifest)
    assert split.check_manifest(manifest) == []
    other = SplitRule(name="holdout-80-20", kind="holdout", seed=1, fractions={"train": 0.8, "test": 0.2})
    problems = MaterialisedSplit.build("toy", other, records).check_manifest(manifest)
    assert problems[0].startswith("fingerprint") and any(p.startswith("moved: ") for p in problems)


def test_every_catalogued_rule_loads():
    from hemabench.datasets import DATASETS

    for spec in DATASETS:
        rule = get_rule(spec.name)
        assert rule.parts(), spec.name
    assert get_rule("breakhis").stratify == "fine_label"


def test_unit_hash_is_uniform_enough():
    from hemabench.splits.rules import unit_hash

    values = np.array([unit_hash(0, "r", str(i)) for i in range(20000)])
    assert values.min() >= 0 and values.max() < 1
    assert np.histogram(values, bins=10, range=(0, 1))[0].min() > 1800
