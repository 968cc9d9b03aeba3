"""aml-mil: attention MIL heads, training loop and the 5 x 3 patient-level protocol."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch
import trees
from sklearn.metrics import balanced_accuracy_score

from hemabench.errors import HemabenchError
from hemabench.protocols.mil import (
    ClasswiseAttentionMIL,
    GatedAttentionMIL,
    TrainConfig,
    cpu_threads,
    pad_bags,
    train_mil,
)
from hemabench.results import SCHEMA_PATH
from hemabench.splits.rules import SplitRule
from hemabench.tasks import TASKS, TaskInput
from hemabench.tasks.aml_mil import blast_filter, make_bags, rotation_roles, top_cells

LABELS = ["CBFB_MYH11", "NPM1", "PML_RARA", "RUNX1_RUNX1T1", "control"]
FAST = {"max_epochs": 30, "patience": 8, "lr": 0.01, "seeds": 1}  # converges in seconds; defaults need ~100 epochs


def synthetic_bags(per_label: int = 12, dim: int = 16, seed: int = 0) -> TaskInput:
    """Bags of 20-60 cells from 4 shared 'normal' clusters plus 3-6 cells of the label's own
    cluster, which alone decides the label; the file name says which cell type it is."""
    rng = np.random.default_rng(seed)
    normal, signal = rng.normal(0, 3, (4, dim)), rng.normal(0, 3, (len(LABELS), dim))
    rows, features = [], []
    for li, label in enumerate(LABELS):
        for p in range(per_label):
            n_signal = int(rng.integers(3, 7))
            kinds = [f"n{k}" for k in rng.integers(0, 4, int(rng.integers(20, 61)) - n_signal)] + ["sig"] * n_signal
            for n, kind in enumerate(kinds):
                centre = signal[li] if kind == "sig" else normal[int(kind[1])]
                features.append(centre + rng.normal(0, 1, dim))
                rows.append({"path": f"{label}/P{li}{p:02d}/{kind}_{n:03d}.png", "label": label, "bag_label": label,
                             "patient": f"P{li}{p:02d}"})
    records = pd.DataFrame(rows)
    rule = SplitRule(name="patient-cv5", kind="kfold", k=5, roles=("train", "val", "test"))
    return TaskInput(features=np.asarray(features, dtype=np.float32), records=records,
                     parts=rule.assign(records).to_numpy(), rotations=rule.rotations(),
                     valid=np.ones(len(records), bool), device="cpu", seed=0)


@pytest.fixture(autouse=True)
def one_thread():
    """As the task runs on CPU: bag-sized ops only slow down with more threads on shared cores."""
    with cpu_threads(1, torch.device("cpu")):
        yield


@pytest.fixture(scope="module")
def bags_input() -> TaskInput:
    return synthetic_bags()


def task(name: str = "aml-mil", **params):
    base = TASKS.get(name)
    return dataclasses.replace(base, params={**base.params, **params})


@pytest.fixture(scope="module")
def learned(bags_input):
    return task(**FAST, heads=["amil"]).evaluate(bags_input)


# -- heads and padding -------------------------------------------------------------------
@pytest.mark.parametrize("head", [ClasswiseAttentionMIL(16, 5), GatedAttentionMIL(16, 5)])
def test_masked_padding_gives_the_unpadded_logits(head):
    torch.manual_seed(0)
    bags = [torch.randn(7, 16), torch.randn(12, 16), torch.randn(1, 16)]
    head.eval()
    x, mask = pad_bags(bags)
    batch_logits, batch_attention = head(x, mask)
    for i, bag in enumerate(bags):
        alone, attention = head(bag[None], torch.ones(1, len(bag), dtype=torch.bool))
        torch.testing.assert_close(batch_logits[i], alone[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(batch_attention[i, :, :len(bag)], attention[0], rtol=0, atol=1e-6)
        assert torch.all(batch_attention[i, :, len(bag):] == 0)  # padding gets no attention at all
    assert torch.allclose(batch_attention.sum(-1), torch.ones(()))


def test_head_shapes_and_top_cells():
    logits, attention = ClasswiseAttentionMIL(16, 5)(*pad_bags([torch.randn(9, 16), torch.randn(4, 16)]))
    assert logits.shape == (2, 5) and attention.shape == (2, 5, 9)  # one attention map per class
    assert GatedAttentionMIL(16, 5)(*pad_bags([torch.randn(3, 16)]))[1].shape == (1, 1, 3)
    paths, rows = np.array(["a", "b", "c", "d"]), np.array([3, 0, 1])
    per_class = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert top_cells(per_class, 1, rows, paths, 2) == [{"path": "b", "score": 0.7}, {"path": "a", "score": 0.2}]
    assert [c["path"] for c in top_cells(per_class[:1], 1, rows, paths, 8)] == ["d", "a", "b"]  # single map


# -- training ----------------------------------------------------------------------------
def test_early_stopping_restores_the_best_weights_not_the_last():
    """Validation bags carry shifted labels, so learning the training labels makes their loss rise."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (5, 8))
    bags = [torch.tensor(centres[i % 5] + rng.normal(0, 1, (10, 8)), dtype=torch.float32) for i in range(20)]
    labels = np.array([i % 5 for i in range(10)] + [(i + 1) % 5 for i in range(10, 20)])
    snapshots = {}
    model, log = train_mil(ClasswiseAttentionMIL(8, 5), bags, labels, np.arange(10), np.arange(10, 20),
                           TrainConfig(lr=0.05, max_epochs=12, patience=100), seed=0,
                           on_epoch=lambda e, m, _: snapshots.__setitem__(e, {k: v.clone() for k, v in m.state_dict().items()}))
    assert log.epochs == 12 and log.best_epoch < 12
    assert log.val_loss[-1] > min(log.val_loss) == log.val_loss[log.best_epoch - 1]
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshots[log.best_epoch][k]) for k in state)
    assert not all(torch.equal(state[k], snapshots[12][k]) for k in state)


def test_patience_stops_training():
    rng = np.random.default_rng(1)
    bags = [torch.tensor(rng.normal(0, 1, (5, 4)), dtype=torch.float32) for _ in range(10)]
    labels = np.array([0, 1] * 5)
    _, log = train_mil(GatedAttentionMIL(4, 2), bags, labels, np.arange(6), np.arange(6, 10),
                       TrainConfig(lr=0.05, max_epochs=200, patience=3), seed=0)
    assert log.epochs == log.best_epoch + 3 < 200


def test_the_model_learns_the_deciding_cell_type_and_attends_to_it(bags_input, learned):
    amil = learned.variants["amil"]
    assert balanced_accuracy_score(amil["true"], amil["pred"]) > 0.7  # chance is 0.2
    assert amil["proba"].shape == (len(amil["id"]), 5) and np.allclose(amil["proba"].sum(1), 1)
    assert list(dict.fromkeys(amil["fold"])) == [f"fold{i}/s0" for i in range(5)]
    attention = learned.extra["attention"]
    assert set(attention) == set(amil["id"])
    right = [a for a in attention.values() if a["pred"] == a["true"]]
    top1_signal = np.mean([a["cells"][0]["path"].split("/")[-1].startswith("sig") for a in right])
    # ~10% of a bag's cells decide it; one class may still be learned by exclusion (no other
    # class's cells present), its map then pointing anywhere: so >= 4 of 5 classes, not all.
    assert len(right) > 30 and top1_signal >= 0.75
    assert all(len(a["cells"]) == 8 and a["cells"][0]["score"] >= a["cells"][-1]["score"] for a in right)
    json.dumps(learned.extra)  # JSON-able as stored
    runs = learned.extra["runs"]
    assert len(runs) == 5 and all(1 <= r["best_epoch"] <= r["epochs"] <= 30 for r in runs)


def test_same_seed_same_numbers(bags_input):
    one = dataclasses.replace(bags_input, rotations=bags_input.rotations[:1])
    small = task(max_epochs=4, patience=2, seeds=1)
    first, second = small.evaluate(one), small.evaluate(one)
    for head in ("amil", "abmil"):
        assert np.array_equal(first.variants[head]["proba"], second.variants[head]["proba"])
    assert first.extra == second.extra
    other = small.evaluate(dataclasses.replace(one, seed=1)).variants["amil"]["proba"]
    assert not np.array_equal(first.variants["amil"]["proba"], other)


def test_runs_in_worker_processes_equal_runs_in_turn(bags_input, monkeypatch):
    """On CPU the runs go to joblib's processes: the numbers are those of one run after another."""
    two = dataclasses.replace(bags_input, rotations=bags_input.rotations[:2])
    small = task(max_epochs=4, patience=2, seeds=1)
    monkeypatch.setenv("HEMABENCH_JOBS", "1")
    in_turn = small.evaluate(two)
    monkeypatch.setenv("HEMABENCH_JOBS", "2")
    spread = small.evaluate(two)
    for head in ("amil", "abmil"):
        for key in ("id", "fold", "pred", "proba"):
            assert np.array_equal(in_turn.variants[head][key], spread.variants[head][key]), (head, key)
    assert in_turn.extra == spread.extra and len(spread.extra["runs"]) == 4


# -- protocol ----------------------------------------------------------------------------
def test_folds_are_patient_disjoint_and_every_patient_is_tested_once_per_seed(bags_input, learned):
    bags = make_bags(bags_input)
    tested = []
    for rotation in bags_input.rotations:
        roles = rotation_roles(bags, rotation)
        sets = [set(bags.patients[roles[r]]) for r in ("train", "val", "test")]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert set.union(*sets) == set(bags.patients)
        tested += sorted(sets[2])
    assert sorted(tested) == sorted(bags.patients)
    ids = learned.variants["amil"]["id"]
    assert len(ids) == len(set(ids)) == len(bags.patients)  # one seed: each patient once


def test_temperature_slice_is_each_runs_validation_patients(bags_input, learned):
    """The temperature of a run is fitted on its validation patients (the early-stopping fold),
    never on its test patients; their probabilities come from the restored model."""
    from hemabench.results.scoring import score_predictions

    bags = make_bags(bags_input)
    amil = learned.variants["amil"]
    c = amil["calibration"]
    assert "validation patients" in c["slice"] and len(c["id"]) == len(bags.patients)  # one seed: each once
    for rotation in bags_input.rotations:
        roles = rotation_roles(bags, rotation)
        run = f"{rotation['test'][0]}/s0"
        held = {i for i, f in zip(c["id"], c["fold"]) if f == run}
        assert held == set(bags.patients[roles["val"]])
        assert not held & {i for i, f in zip(amil["id"], amil["fold"]) if f == run}
    proba = np.asarray(c["proba"])
    assert proba.shape == (len(c["id"]), len(LABELS)) and np.allclose(proba.sum(axis=1), 1)
    metrics = score_predictions({"amil": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in amil.items()}},
                                LABELS, "amil", n_boot=20)["metrics"]
    assert {"amil/ece", "amil/ece_ts", "amil/nll_ts"} <= set(metrics)


def test_a_leaking_split_is_refused(bags_input):
    parts = bags_input.parts.copy()
    first = np.flatnonzero(bags_input.records["patient"] == "P000")
    parts[first[0]] = "fold0" if parts[first[1]] != "fold0" else "fold1"  # one patient in two folds
    with pytest.raises(HemabenchError, match="P000"):
        make_bags(dataclasses.replace(bags_input, parts=parts))
    with pytest.raises(HemabenchError, match="both train and test"):
        rotation_roles(make_bags(bags_input), {"train": ["fold0", "fold1"], "val": ["fold2"], "test": ["fold1"]})


def test_blast_filter_keeps_controls_and_records_exclusions(bags_input):
    bags = make_bags(bags_input)
    sheet = pd.DataFrame({"pb_myeloblast": 5.0, "pb_promyelocyte": 10.0, "pb_myelocyte": 4.0},
                         index=pd.Index(bags.patients, name="patient_id"))
    sheet.loc["P000", "pb_myeloblast"] = 6.0  # 20.0: kept
    sheet = sheet.drop(index="P101")  # no counts: kept, listed
    keep, report = blast_filter(bags, sheet, 20, ("control",))
    kept = set(bags.patients[keep])
    assert kept == {"P000", "P101"} | {p for p, label in zip(bags.patients, bags.labels) if label == "control"}
    assert len(report["excluded"]) == 4 * 12 - 2 and report["kept_without_counts"] == ["P101"]
    assert report["excluded"][0]["blast_percent"] == pytest.approx(19.0)


def test_blast_task_needs_the_metadata_sheet(bags_input):
    blast = task("aml-mil-blast20", max_epochs=1, seeds=1)
    assert blast.params["blast_filter"] == 20 and TASKS.get("aml-mil").params["blast_filter"] is None
    with pytest.raises(HemabenchError, match="metadata.csv"):
        blast.evaluate(bags_input)
    with pytest.raises(HemabenchError, match="pb_myeloblast"):
        blast.evaluate(dataclasses.replace(bags_input, patients=pd.DataFrame(index=["P000"])))


# -- end to end ----------------------------------------------------------------------------
def test_cli_run_on_the_real_layout(tmp_path, cli, monkeypatch):
    """`hemabench run --task aml-mil` on a fixture tree named like the TCIA download (lighter epochs)."""
    trees.aml_hehr(tmp_path / "data")
    monkeypatch.setitem(TASKS._items, "aml-mil", task(max_epochs=3, patience=2))
    out = tmp_path / "results"
    code, stdout, _ = cli("run", "--encoder", "handcrafted", "--task", "aml-mil", "--dataset", "aml-hehr",
                          "--data-root", tmp_path / "data", "--out", out, "--no-progress")
    assert code == 0 and "computed" in stdout
    result = json.loads((out / "handcrafted" / "aml-mil" / "aml-hehr.json").read_text())
    jsonschema.validate(result, json.loads(SCHEMA_PATH.read_text()))
    amil = result["predictions"]["amil"]
    assert len(amil["id"]) == 26 * 3 and set(amil["id"]) >= {"CON000", "OLD01"}  # 26 patients x 3 seeds
    assert len(result["metrics"]["amil/weighted_f1"]["values"]) == 15 and "abmil/roc_auc_macro" in result["metrics"]
    assert set(result["extra"]["attention"]) == set(amil["id"])
    cells = result["extra"]["attention"]["OLD01"]["cells"]
    assert [c["path"] for c in cells] and all(c["path"].startswith("NPM1/OLD01/") for c in cells)
    assert len(result["extra"]["runs"]) == 30
