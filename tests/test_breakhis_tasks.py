"""BreakHis tasks: name parsing, PLA scoring, per-magnification / limited-label / cross-magnification probes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch
import trees

from hemabench.datasets.breakhis import SUBTYPES, parse_breakhis_name
from hemabench.errors import HemabenchError
from hemabench.results import SCHEMA_PATH, Result, predictions_payload, score_predictions
from hemabench.splits.rules import SplitRule
from hemabench.tasks import TASKS, TaskInput
from hemabench.tasks import breakhis as bh

MAGS = (40, 100, 200, 400)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Hundreds of tiny L-BFGS fits: extra threads only add contention on a 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def breakhis_input(patients: int = 16, per_mag: int = 5, dim: int = 10, drop: int | None = None) -> TaskInput:
    """Patient-wise 5 folds; the benign/malignant direction turns with magnification, so a
    probe transfers only partly across scales, and each patient adds its own offset."""
    rng = np.random.default_rng(0)
    codes = list(SUBTYPES)
    direction = {m: rng.normal(0, 1, dim) for m in MAGS}
    rows, feats = [], []
    for p in range(patients):
        code = codes[p % len(codes)]
        label, offset = SUBTYPES[code][0], rng.normal(0, 0.5, dim)
        for m in [m for m in MAGS if m != drop]:
            for s in range(per_mag):
                rows.append({"path": f"{label}/SOB/{code}/P{p:02d}/{m}X/{s:03d}.png", "label": label, "fine_label": code,
                             "patient": f"P{p:02d}", "magnification": m, "fold": f"fold{p % 5}"})
                feats.append(offset + (1.0 if label == "malignant" else -1.0) * direction[m] + rng.normal(0, 1.0, dim))
    records = pd.DataFrame(rows)
    return TaskInput(features=np.asarray(feats, dtype=np.float32), records=records.drop(columns="fold"),
                     parts=records["fold"].to_numpy(), rotations=SplitRule("t", "kfold", k=5).rotations(),
                     valid=np.ones(len(records), bool), device="cpu")


def scored(task, preds) -> dict:
    labels = sorted(set(preds.variants[next(iter(preds.variants))]["true"]) | {"benign", "malignant"})
    return score_predictions(predictions_payload(preds), labels, task.main_metric.split("/")[0], n_boot=20)["metrics"]


@pytest.mark.parametrize("name, expected", [
    ("SOB_B_A-14-22549AB-40-001.png", ("benign", "A", "14", "22549AB", 40, "001")),
    ("SOB_M_DC-14-2523-400-015.png", ("malignant", "DC", "14", "2523", 400, "015")),
    ("SOB_B_PT-14-21998AB-100-005.png", ("benign", "PT", "14", "21998AB", 100, "005")),
    ("SOB_M_MC-14-13418DE-200-003.png", ("malignant", "MC", "14", "13418DE", 200, "003")),
])
def test_parse_real_breakhis_names(name, expected):
    info = parse_breakhis_name(name)
    assert (info["tumour"], info["subtype"], info["year"], info["patient_id"], info["magnification"],
            info["sequence"]) == expected


def test_patient_level_accuracy_by_hand():
    # fold a: P1 3 of 4 right, P2 1 of 1, P3 0 of 2 -> PLA (0.75 + 1 + 0) / 3, ILA 4/7
    # fold b: P4 1 of 2, P5 2 of 2                    -> PLA (0.5 + 1) / 2,     ILA 3/4
    t = ["malignant"] * 4 + ["benign"] * 3 + ["malignant"] * 4
    p = ["malignant"] * 3 + ["benign"] * 2 + ["malignant"] * 2 + ["benign", "malignant", "malignant", "malignant"]
    g = ["P1"] * 4 + ["P2"] + ["P3"] * 2 + ["P4"] * 2 + ["P5"] * 2
    f = ["a"] * 7 + ["b"] * 4
    variant = {"id": [str(i) for i in range(11)], "fold": f, "true": t, "pred": p, "group": g}
    m = score_predictions({"all": variant}, ["benign", "malignant"], "all", n_boot=50)["metrics"]
    assert m["all/patient_accuracy"]["values"] == pytest.approx([1.75 / 3, 0.75])
    assert m["all/patient_accuracy"]["mean"] == pytest.approx((1.75 / 3 + 0.75) / 2)
    assert m["all/accuracy"]["values"] == pytest.approx([4 / 7, 3 / 4])


def test_binary_variants_carry_ila_and_pla_per_magnification():
    task = TASKS.get("breakhis-binary")
    preds = task.evaluate(breakhis_input())
    assert list(preds.variants) == ["40x", "100x", "200x", "400x", "all"]
    for m in MAGS:
        v = preds.variants[f"{m}x"]
        assert {"id", "fold", "true", "pred", "group"} <= set(v) and all(f"/{m}X/" in i for i in v["id"])
        assert len({len(c) for k, c in v.items() if k != "calibration"}) == 1
    assert len(preds.variants["all"]["id"]) == len(set(preds.variants["all"]["id"])) == 16 * 4 * 5
    metrics = scored(task, preds)
    assert metrics[task.main_metric]["mean"] > 0.7 and len(metrics["40x/patient_accuracy"]["values"]) == 5
    assert preds.extra["magnification_mean"]["accuracy"] == pytest.approx(
        np.mean([metrics[f"{m}x/accuracy"]["mean"] for m in MAGS]))


def test_crossmag_matrix_and_its_diagonal_equal_the_per_magnification_task():
    data = breakhis_input()
    binary = TASKS.get("breakhis-binary").evaluate(data)
    task = TASKS.get("breakhis-crossmag")
    cross = task.evaluate(data)
    matrix = cross.extra["crossmag"]
    assert matrix["magnifications"] == list(MAGS)
    assert np.shape(matrix["accuracy"]) == np.shape(matrix["patient_accuracy"]) == (4, 4)
    b_metrics, c_metrics = scored(TASKS.get("breakhis-binary"), binary), scored(task, cross)
    for i, m in enumerate(MAGS):
        same, diag = binary.variants[f"{m}x"], cross.variants[f"{m}x->{m}x"]
        for key in ("id", "fold", "pred"):
            np.testing.assert_array_equal(same[key], diag[key])  # same fit, same rows: exact
        assert matrix["accuracy"][i][i] == b_metrics[f"{m}x/accuracy"]["mean"]
        assert matrix["patient_accuracy"][i][i] == b_metrics[f"{m}x/patient_accuracy"]["mean"]
        for j, t in enumerate(MAGS):
            assert matrix["accuracy"][i][j] == pytest.approx(c_metrics[f"{m}x->{t}x/accuracy"]["mean"])
    off = [matrix["accuracy"][i][j] for i in range(4) for j in range(4) if i != j]
    summary = matrix["summary"]["accuracy"]
    assert summary["off_diagonal"] == pytest.approx(np.mean(off)) and summary["gap"] > 0  # the direction turns
    assert len(cross.variants["offdiag"]["id"]) == 3 * len(cross.variants["diag"]["id"])
    assert task.main_metric in c_metrics


def test_limited_sampling_is_seeded_stratified_nested_and_from_training_rows():
    labels = np.array(["benign"] * 30 + ["malignant"] * 70 + ["benign"] * 20)
    keys = np.array([f"img{i:03d}" for i in range(len(labels))])
    train = np.arange(100)  # the last 20 rows play the test fold
    fractions = [5, 10, 20, 40, 60, 80, 100]
    a, b = bh.limited_sample(labels, keys, train, fractions, [0, 1, 40]), bh.limited_sample(
        labels, keys, train, fractions, [0, 1, 40])
    other = bh.limited_sample(labels, keys, train, fractions, [1, 1, 40])
    assert all(np.array_equal(a[f], b[f]) for f in fractions)
    assert not np.array_equal(a[20], other[20])
    for small, big in zip(fractions, fractions[1:]):
        assert set(a[small]) < set(a[big])
    for f in fractions:
        assert set(a[f]) <= set(train)
        counts = pd.Series(labels[a[f]]).value_counts()
        assert counts["benign"] == -(-30 * f // 100) and counts["malignant"] == -(-70 * f // 100)
    assert np.array_equal(a[100], train)
    assert sorted(set(labels[bh.limited_sample(labels, keys, np.array([0, 50, 51]), [5], 0)[5]])) == ["benign", "malignant"]


def test_limited_task_fits_only_training_patients_and_grows(monkeypatch):
    data = breakhis_input()
    task = dataclasses.replace(TASKS.get("breakhis-limited"), params={
        **TASKS.get("breakhis-limited").params, "fractions": [10, 20, 100]})
    task = dataclasses.replace(task, variants=tuple(f"{v}-{f}pct" for f in (10, 20, 100)
                                                    for v in ["40x", "100x", "200x", "400x", "all"]))
    seen, probe = [], bh._Context.probe

    def spy(self, params, train, test, held, fold, **tags):
        seen.append((train, test, held, {**tags, "fold": fold}))
        return probe(self, params, train, test, held, fold, **tags)

    monkeypatch.setattr(bh._Context, "probe", spy)
    preds = task.evaluate(data)
    patients = data.records["patient"].to_numpy()
    for train, test, held, tags in seen:
        assert not set(patients[train]) & set(patients[test]) and (data.parts[train] != tags["fold"]).all()
        assert (data.records["magnification"].to_numpy()[train] == tags["magnification"]).all()
        assert not set(patients[held]) & set(patients[test]) and (data.parts[held] != tags["fold"]).all()
    fits = pd.DataFrame(preds.extra["solver"])
    for _, group in fits.groupby(["fold", "magnification"]):
        assert group.sort_values("fraction")["n_train"].is_monotonic_increasing
    full = TASKS.get("breakhis-binary").evaluate(data)
    np.testing.assert_array_equal(preds.variants["400x-100pct"]["pred"], full.variants["400x"]["pred"])
    again = task.evaluate(data)
    np.testing.assert_array_equal(again.variants["all-10pct"]["pred"], preds.variants["all-10pct"]["pred"])


def test_temperature_slices_are_held_out_training_patients_and_pooled_variants_refer_to_them(monkeypatch):
    """Per fit, the slice is whole training patients the temperature fit never saw; ``all`` and
    ``diag``/``offdiag`` store references to the per-fit slices, which scoring resolves."""
    from hemabench.results.calibration import resolve_slices

    data = breakhis_input()
    patients, parts = data.records["patient"].to_numpy(), data.parts
    fits, fit = [], bh._Context._fit

    def spy(self, params, train, test, log=True, **tags):
        fits.append((train, test, log))
        return fit(self, params, train, test, log, **tags)

    monkeypatch.setattr(bh._Context, "_fit", spy)
    binary = TASKS.get("breakhis-binary").evaluate(data)
    main, slices = fits[0::2], fits[1::2]  # each probe: its fit, then the temperature fit
    assert all(log for *_, log in main) and not any(log for *_, log in slices)
    for (train, test, _), (rest, held, _) in zip(main, slices):
        assert set(held) < set(train) and not set(patients[rest]) & set(patients[held])  # whole patients out
        assert set(rest) == set(train) - set(held) and not set(patients[held]) & set(patients[test])
    assert binary.variants["all"]["calibration"] == {"from": ["40x", "100x", "200x", "400x"]}
    resolved = resolve_slices(predictions_payload(binary))["all"]["calibration"]
    assert sorted(resolved["id"]) == sorted(i for m in MAGS for i in binary.variants[f"{m}x"]["calibration"]["id"])
    for m in MAGS:
        c = binary.variants[f"{m}x"]["calibration"]
        assert c["fraction"] == 0.2 and all(f"/{m}X/" in i for i in c["id"])
        assert all(parts[data.records["path"].to_numpy() == i][0] != f for i, f in zip(c["id"], c["fold"]))
    metrics = scored(TASKS.get("breakhis-binary"), binary)
    assert all(f"{v}/ece_ts" in metrics for v in binary.variants)
    cross = TASKS.get("breakhis-crossmag").evaluate(data)
    assert cross.variants["40x->100x"]["calibration"] == {"from": ["40x->40x"]}
    assert cross.variants["offdiag"]["calibration"] == cross.variants["diag"]["calibration"] == {
        "from": [f"{m}x->40x" for m in MAGS]}  # each fit's slice is stored under the first variant it fed
    assert cross.variants["40x->40x"]["calibration"]["id"] == binary.variants["40x"]["calibration"]["id"]
    assert cross.variants["100x->100x"]["calibration"] == {"from": ["100x->40x"]}
    bad = predictions_payload(binary)
    bad["all"]["calibration"] = {"from": ["all"]}
    with pytest.raises(ValueError, match="'all'.*no stored slice"):
        resolve_slices(bad)


def test_a_fit_with_nothing_left_after_the_slice_adds_no_slice_cells():
    """If the held-out patients are all a fit has (a tiny fraction), no temperature cells are
    invented for it: a uniform filler would give an arbitrary temperature."""
    data = breakhis_input()
    ctx = bh._Context.build(data, "label")
    _, fold, train, test = ctx.folds[0]
    ctx.probe(TASKS.get("breakhis-binary").params, train[:4], test, held=train[:4], fold=fold)
    assert len(ctx.held[-1][1]) == 0 and ctx.held[-1][2].shape == (0, 2)
    ctx.probe(TASKS.get("breakhis-binary").params, train, test, held=train[:4], fold=fold)
    assert list(ctx.held[-1][1]) == list(train[:4]) and np.allclose(ctx.held[-1][2].sum(axis=1), 1)


def test_missing_magnification_is_skipped_and_patient_leak_raises():
    data = breakhis_input(drop=200)
    binary = TASKS.get("breakhis-binary").evaluate(data)
    assert "200x" not in binary.variants and "all" in binary.variants
    cross = TASKS.get("breakhis-crossmag").evaluate(data)
    assert cross.extra["crossmag"]["magnifications"] == [40, 100, 400]
    assert np.shape(cross.extra["crossmag"]["accuracy"]) == (3, 3)
    leaky = breakhis_input()
    leaky.parts[leaky.records["patient"].to_numpy() == "P03"] = np.where(
        np.arange(20) % 2, "fold0", "fold3")  # one patient's images in two folds
    with pytest.raises(HemabenchError, match="P03"):
        TASKS.get("breakhis-binary").evaluate(leaky)


def test_subtype_and_limited_metadata():
    subtype, limited = TASKS.get("breakhis-subtype"), TASKS.get("breakhis-limited")
    assert subtype.label_column == "fine_label" and subtype.main_metric == "all/patient_accuracy"
    assert limited.params["fractions"] == [5, 10, 20, 40, 60, 80, 100]
    for task in (subtype, limited, TASKS.get("breakhis-crossmag")):
        assert task.main_metric.split("/")[0] in task.variants and task.main_metric.count("/") == 1


def test_cli_end_to_end_on_the_real_layout(tmp_path, cli):
    trees.breakhis(tmp_path / "data", per_mag=3)
    out = tmp_path / "results"
    code, stdout, _ = cli("run", "--encoder", "handcrafted", "--task", "breakhis-binary", "--task", "breakhis-crossmag",
                          "--dataset", "breakhis", "--data-root", tmp_path / "data", "--out", out, "--no-progress")
    assert code == 0 and "breakhis-binary" in stdout and "breakhis-crossmag" in stdout
    schema = json.loads(SCHEMA_PATH.read_text())
    binary = json.loads((out / "handcrafted" / "breakhis-binary" / "breakhis.json").read_text())
    jsonschema.validate(binary, schema)
    for m in MAGS:
        assert {f"{m}x/accuracy", f"{m}x/patient_accuracy", f"{m}x/balanced_accuracy"} <= set(binary["metrics"])
    assert binary["main_metric"] == "all/patient_accuracy" and binary["task_metadata"]["method"]["magnifications"]
    assert len(binary["predictions"]["all"]["id"]) == 9 * 4 * 3  # the misfiled 100X-in-40X file is skipped
    cross = json.loads((out / "handcrafted" / "breakhis-crossmag" / "breakhis.json").read_text())
    jsonschema.validate(cross, schema)
    matrix = cross["extra"]["crossmag"]
    assert np.shape(matrix["accuracy"]) == np.shape(matrix["patient_accuracy"]) == (4, 4)
    assert [matrix["accuracy"][i][i] for i in range(4)] == [binary["metrics"][f"{m}x/accuracy"]["mean"] for m in MAGS]


@pytest.mark.parametrize("task, forge, field", [
    ("breakhis-crossmag", lambda e: e["crossmag"]["accuracy"][0].__setitem__(1, 0.5),
     'extra["crossmag"]["accuracy"][0][1]'),
    ("breakhis-crossmag", lambda e: e["crossmag"]["summary"]["patient_accuracy"].__setitem__("gap", 0.0),
     'extra["crossmag"]["summary"]["patient_accuracy"]["gap"]'),
    ("breakhis-binary", lambda e: e["magnification_mean"].__setitem__("accuracy", 1.0),
     'extra["magnification_mean"]["accuracy"]'),
])
def test_validate_rederives_the_matrices_and_means_with_the_tasks_own_method(task, forge, field):
    """``extra.crossmag`` and ``extra.magnification_mean`` of a committed reference are what the task's
    ``derived`` gives on its stored predictions; an edited cell is reported at its place."""
    from hemabench.submissions.recompute import derived_extra_problems

    path = Path(__file__).resolve().parents[1] / "submissions" / "handcrafted" / "results" / task / "synth-breakhis.json"
    result = json.loads(path.read_text())
    assert derived_extra_problems(Result.from_dict(result), "r.json") == []
    forge(result["extra"])
    (problem,) = derived_extra_problems(Result.from_dict(result), "r.json")
    assert problem.field == field and "but the predictions give" in problem.message
