"""Forged-but-consistent results: each forgery of issue 14 is built from a committed reference result,
its numbers recomputed from the forged predictions (so the old checks pass), and must be rejected by
`validate` with a line saying what does not match the registered split or encoder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hemabench.results import Result
from hemabench.submissions import validate_paths
from hemabench.submissions.recompute import recompute

REFERENCES = Path(__file__).resolve().parents[1] / "submissions"
PROBE = REFERENCES / "handcrafted" / "results" / "cell-probe" / "synth-blood.json"
KNN = REFERENCES / "handcrafted" / "results" / "cell-knn" / "synth-bm.json"
EFFICIENCY = REFERENCES / "handcrafted" / "results" / "label-efficiency" / "synth-blood.json"
BREAKHIS = REFERENCES / "handcrafted" / "results" / "breakhis-binary" / "synth-breakhis.json"


def consistent(result: dict) -> dict:
    """Rewrite every number from the (forged) predictions, as a careful forger would."""
    fresh = recompute(Result.from_dict(result))
    result.update(metrics=fresh["metrics"], per_class=fresh["per_class"], confusion_matrix=fresh["confusion_matrix"])
    return result


def write(tmp_path: Path, result: dict) -> Path:
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(result))
    return path


def errors(path: Path) -> list[str]:
    return [str(p) for p in validate_paths([str(path)]).errors]


def forged(tmp_path: Path, source: Path, change) -> list[str]:
    result = json.loads(source.read_text())
    change(result)
    return errors(write(tmp_path, consistent(result)))


@pytest.mark.parametrize("source", [PROBE, KNN, EFFICIENCY, BREAKHIS])
def test_reference_results_tie_to_their_registered_split(tmp_path, source):
    result = json.loads(source.read_text())
    assert errors(write(tmp_path, consistent(result))) == []


def _keep(p: dict, index) -> None:
    for key in [k for k in ("id", "fold", "true", "pred", "group", "proba") if k in p]:
        p[key] = [p[key][i] for i in index]


def test_dropped_hard_samples_are_rejected(tmp_path):
    def drop(r):
        p = r["predictions"]["probe"]
        _keep(p, [i for i, (t, y) in enumerate(zip(p["true"], p["pred"])) if t == y][:20])

    lines = forged(tmp_path, PROBE, drop)
    assert any('predictions["probe"] fold test: test-set fingerprint' in line and "(20 ids) matches no registered "
               "test set; registered records" in line and "(93 ids)" in line for line in lines), lines


def test_temperature_fitted_on_test_cells_is_rejected(tmp_path):
    """The slice replaced by the test cells themselves: the scaled ECE would be fitted on what it scores."""
    def on_test(r):
        p = r["predictions"]["probe"]
        p["calibration"] = {**p["calibration"], **{k: p[k] for k in ("id", "fold", "true", "proba")}}

    lines = forged(tmp_path, PROBE, on_test)
    assert any('predictions["probe"].calibration' in line and "93 slice cells are test cells of the same fold"
               in line for line in lines), lines


def test_a_slice_reference_to_nothing_is_rejected(tmp_path):
    result = json.loads(BREAKHIS.read_text())
    result["predictions"]["all"]["calibration"] = {"from": ["all"]}
    lines = errors(write(tmp_path, result))
    assert any("calibration 'from' names 'all', which has no stored slice" in line for line in lines), lines
    result = json.loads(PROBE.read_text())
    result["predictions"]["probe"]["calibration"]["id"] = 5  # hostile JSON: one line naming the field
    lines = errors(write(tmp_path, result))
    assert any("predictions/probe/calibration/id: schema: 5 is not of type 'array'" in line for line in lines), lines


def test_duplicated_ids_are_rejected(tmp_path):
    lines = forged(tmp_path, PROBE, lambda r: _keep(r["predictions"]["probe"], list(range(93)) * 10))
    assert any("ids are not unique: 93 repeated" in line and "x10" in line for line in lines), lines


def test_invented_ids_are_rejected(tmp_path):
    def invent(r):
        p = r["predictions"]["probe"]
        p["id"] = [f"BAS/BAS_9{i:04d}.png" if i < 5 else x for i, x in enumerate(p["id"])]

    lines = forged(tmp_path, PROBE, invent)
    assert any("test-set fingerprint" in line and "(93 ids) matches no registered test set" in line for line in lines)


def test_truth_rewritten_to_predictions_is_rejected(tmp_path):
    def rewrite(r):
        p = r["predictions"]["probe"]
        p["true"] = list(p["pred"])

    lines = forged(tmp_path, PROBE, rewrite)
    assert any("per-class test counts (BAS 12," in line and "differ from the registered records (BAS 11," in line
               for line in lines), lines


def test_truth_swapped_with_equal_counts_is_rejected(tmp_path):
    def swap(r):  # two cells of different classes exchange labels: counts stay, (id, label) pairs do not
        p = r["predictions"]["probe"]
        i, j = 0, p["true"].index(next(t for t in p["true"] if t != p["true"][0]))
        p["true"][i], p["true"][j] = p["true"][j], p["true"][i]

    lines = forged(tmp_path, PROBE, swap)
    assert any("true labels differ from the registered labels of records" in line for line in lines), lines


def test_labels_collapsed_to_one_class_are_rejected(tmp_path):
    def collapse(r):
        p = r["predictions"]["probe"]
        p["true"] = p["pred"] = ["BAS"] * len(p["id"])
        p.pop("proba"), p.pop("calibration")  # probabilities over the real classes would betray it
        r["labels"] = ["BAS"]

    lines = forged(tmp_path, PROBE, collapse)
    assert any("per-class test counts (BAS 93)" in line for line in lines), lines
    assert any(line.endswith("labels: ['BAS'] is not the dataset's label set "
                             "['BAS', 'EOS', 'LYT', 'MON', 'MYB', 'NGB', 'NGS', 'PMO']") for line in lines), lines


def test_diagonal_confusion_stack_instead_of_per_sample_predictions_is_rejected(tmp_path):
    def diagonal(r):
        p = r["predictions"]["probe"]
        counts = [p["true"].count(label) for label in r["labels"]]
        r["predictions"]["probe"] = {"fold": ["test"], "confusions": [np.diag(counts).tolist()]}

    lines = forged(tmp_path, PROBE, diagonal)
    assert any("task 'cell-probe' stores per-sample predictions (id, fold, true, pred), not confusion matrices" in line
               for line in lines), lines


def test_confusion_stack_with_other_row_sums_is_rejected(tmp_path):
    def inflate(r):
        for p in r["predictions"].values():
            if "confusions" in p:  # the sweep's variants (the recorded repetition has per-cell predictions)
                p["confusions"] = [np.diag(np.asarray(c).sum(axis=1) * 2).tolist() for c in p["confusions"]]

    lines = forged(tmp_path, EFFICIENCY, inflate)
    assert any(".confusions (fold rep000): rows sum to (BAS 42," in line and "not the registered per-class test "
               "counts (BAS 21," in line for line in lines), lines


def test_breakhis_magnification_subset_checked_per_view(tmp_path):
    def drop(r):
        _keep(r["predictions"]["40x"], list(range(10, len(r["predictions"]["40x"]["id"]))))

    lines = forged(tmp_path, BREAKHIS, drop)
    assert any('predictions["40x"] fold fold0: test-set fingerprint' in line for line in lines), lines


def test_posing_as_a_registered_encoder_with_invented_weights_is_rejected(tmp_path, monkeypatch):
    from hemabench.encoders import ENCODERS

    def pose(r):
        r["encoder"] = {**r["encoder"], "name": "dinobloom-s", "weights_sha256": "ab" * 32,
                        "spec": ENCODERS.get("dinobloom-s").to_dict()}
        p = r["predictions"]["probe"]
        p["pred"] = list(p["true"])  # ranked 1st at 100.0

    lines = forged(tmp_path, PROBE, pose)
    assert any("encoder.weights_sha256: registered encoder 'dinobloom-s' pins no weights sha256 yet" in line
               for line in lines), lines
    spec = ENCODERS.get("dinobloom-s")
    pinned = dataclasses.replace(spec, weights=(dataclasses.replace(spec.weights[0], sha256="cd" * 32),))
    monkeypatch.setitem(ENCODERS._items, "dinobloom-s", pinned)
    lines = forged(tmp_path, PROBE, pose)
    assert any(f"encoder.weights_sha256: {'ab' * 32} is not the weights of registered encoder 'dinobloom-s' "
               f"({'cd' * 32}, pinned in" in line for line in lines), lines


def test_kfold_split_fingerprint_recomputed_from_predictions(tmp_path, monkeypatch):
    """A k-fold rule registered by its split fingerprint alone (real Acevedo): moving one cell to
    another fold changes the fingerprint recomputed from (id, fold)."""
    from hemabench.submissions import integrity

    entry = integrity.registered("synth-breakhis", "patient-cv5", 1)
    monkeypatch.setattr(integrity, "registered", lambda *a: {**entry, "tests": {}})

    def move(r):
        for p in r["predictions"].values():
            p["fold"] = ["fold1" if i == 0 else f for i, f in enumerate(p["fold"])]

    lines = forged(tmp_path, BREAKHIS, move)
    assert any("the split fingerprint recomputed from the predictions' (id, fold) pairs" in line for line in lines)


@pytest.mark.parametrize("dataset", ["synth-bm", "synth-blood", "synth-aml", "synth-breakhis"])
def test_registered_synthetic_entries_are_what_the_code_generates(dataset):
    from hemabench.datasets import load_dataset
    from hemabench.splits import MaterialisedSplit, get_rule, split_names
    from hemabench.splits.fingerprints import load_registry, registration

    discovery = load_dataset(dataset)
    for name in split_names(dataset):
        split = MaterialisedSplit.build(dataset, get_rule(dataset, name), discovery.records)
        fresh = registration(split, discovery.records, "")
        committed = load_registry()[dataset][name]
        assert {**fresh, "source": None} == {**committed, "source": None}, \
            f"regenerate: hemabench data splits {dataset} --split {name} --register"


def test_register_writes_an_entry_and_keeps_the_others(tmp_path, cli, monkeypatch):
    from hemabench.splits import fingerprints

    path = tmp_path / "fingerprints.yaml"
    path.write_text("acevedo: {cv5: {version: 1, kind: kfold, fingerprint: x}}\n")
    monkeypatch.setattr(fingerprints, "registry_path", lambda: path)
    code, out, err = cli("data", "splits", "synth-blood", "--split", "cv5", "--register")
    assert code == 0 and f"registered cv5@v1 of synth-blood in {path}" in err
    import yaml

    data = yaml.safe_load(path.read_text())
    assert data["acevedo"]["cv5"]["fingerprint"] == "x"
    entry = data["synth-blood"]["cv5"]
    assert list(entry["tests"]) == [f"fold{i}" for i in range(5)]
    assert sum(entry["tests"][f"fold{i}"]["records"]["n"] for i in range(5)) == 480
    fingerprints.load_registry.cache_clear()


def test_cross_dataset_source_split_must_be_registered(tmp_path):
    transfer = REFERENCES / "handcrafted" / "results" / "bm-to-blood" / "synth-blood.json"
    lines = forged(tmp_path, transfer, lambda r: r["source_split"].update(fingerprint="0" * 64))
    assert any(f"source_split.fingerprint: {'0' * 64} " in line for line in lines), lines


def test_unregistered_source_split_is_never_ranked(monkeypatch):
    from hemabench.submissions import integrity

    result = Result.load(REFERENCES / "handcrafted" / "results" / "bm-to-blood" / "synth-blood.json")
    assert integrity.split_status(result) == "registered"
    real = integrity.registered
    monkeypatch.setattr(integrity, "registered", lambda d, *a: None if d == "synth-bm" else real(d, *a))
    assert integrity.split_status(result) == integrity.UNREGISTERED
    (line,) = integrity.integrity_problems(result, "r.json")
    assert str(line) == "r.json: source_split: synth-bm holdout-70-30 v1 has no registered fingerprint: accepted " \
                        "only as an unregistered split, never ranked"
