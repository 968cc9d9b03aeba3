"""Calibration metrics against independent computations; temperature scaling never sees test cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from hemabench.results import calibration as cal
from hemabench.results.scoring import score_predictions

LABELS = ["a", "b", "c"]


def random_proba(n: int, k: int, seed: int, sharpness: float = 2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * sharpness
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    true = np.array([rng.choice(k, p=row) for row in p])  # calibrated by construction
    return true, p


def test_ece_known_answer():
    # Bin 15 (confidence 0.95): 2 cells, 1 right -> |0.5 - 0.95| = 0.45; bin 9 (0.6): 2 cells, both right
    # -> |1 - 0.6| = 0.4. ECE = (2*0.45 + 2*0.4) / 4 = 0.425.
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    true = np.array([0, 1, 0, 1])
    assert cal.ece(true, proba) == pytest.approx(0.425)
    # the same cells, hand-binned on each class's own probability: class 0 values 0.95,0.95,0.6,0.4
    # -> bins 15 (hits 1,0), 9 (hit 1), 6 (hit 0): (2*0.45 + 0.4 + 0.4)/4; class 1 is symmetric
    assert cal.classwise_ece(true, proba) == pytest.approx((0.9 + 0.8) / 4)


def test_perfect_and_uniform():
    true = np.array([0, 1, 2, 0])
    onehot = np.eye(3)[true]
    assert cal.ece(true, onehot) == 0 and cal.brier(true, onehot) == 0 and cal.aurc(true, onehot) == 0
    uniform = np.full((4, 3), 1 / 3)
    assert cal.nll(true, uniform) == pytest.approx(np.log(3))


def test_brier_and_nll_equal_sklearn():
    true, proba = random_proba(400, 4, seed=1)
    assert cal.nll(true, proba) == pytest.approx(log_loss(true, proba, labels=range(4)), rel=1e-12)
    assert cal.brier(true, proba) == pytest.approx(brier_score_loss(true, proba, labels=range(4)), rel=1e-12)
    binary_true, binary = random_proba(300, 2, seed=2)
    # binary Brier in scikit-learn is on the positive class only: our sum over both classes is twice it
    assert cal.brier(binary_true, binary) == pytest.approx(2 * brier_score_loss(binary_true, binary[:, 1]), rel=1e-12)


def test_risk_coverage_by_hand():
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
    true = np.array([0, 1, 1, 1])  # order by confidence: 0.9 right, 0.8 wrong, 0.7 right, 0.55 wrong
    coverage, risk = cal.risk_coverage(true, proba)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk.tolist() == pytest.approx([0, 1 / 2, 1 / 3, 2 / 4])
    assert cal.aurc(true, proba) == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert cal.risk_at(true, proba, 0.75) == pytest.approx(1 / 3)


def test_temperature_recovers_overconfidence():
    true, proba = random_proba(3000, 5, seed=3)
    sharpened = cal.apply_temperature(proba, 0.5)  # the calibrated probabilities made overconfident
    t = cal.fit_temperature(true, sharpened)
    assert t == pytest.approx(2.0, rel=0.15)
    assert cal.ece(true, cal.apply_temperature(sharpened, t)) < cal.ece(true, sharpened)


def test_held_out_slice_draws_only_training_rows():
    labels = np.array(list("aaaaabbbbbccccc" * 4))
    train = np.arange(0, 40)
    held = cal.held_out_slice(train, labels, seed=0, fraction=0.25)
    assert set(held) <= set(train) and len(held) > 0
    assert sorted(set(labels[held])) == ["a", "b", "c"]
    assert np.array_equal(held, cal.held_out_slice(train, labels, seed=0, fraction=0.25))


def variant_with_slice(seed=0):
    true, proba = random_proba(300, 3, seed=seed)
    sharp = cal.apply_temperature(proba, 0.5)
    folds = np.array(["f0", "f1"] * 150)
    ctrue, cproba = random_proba(200, 3, seed=seed + 10)
    cfold = np.array(["f0", "f1"] * 100)
    return {"id": [f"x{i}" for i in range(300)], "fold": folds.tolist(), "true": [LABELS[t] for t in true],
            "pred": [LABELS[t] for t in sharp.argmax(1)], "proba": sharp.tolist(),
            "calibration": cal.slice_payload([f"c{i}" for i in range(200)], cfold, [LABELS[t] for t in ctrue],
                                             cal.apply_temperature(cproba, 0.5), fraction=0.2, seed=0)}


def test_scoring_reports_raw_and_scaled_from_stored_predictions():
    p = variant_with_slice()
    metrics = score_predictions({"probe": p}, LABELS, "probe", n_boot=20)["metrics"]
    for name in ("ece", "classwise_ece", "brier", "nll", "aurc", "risk_at_80", "ece_ts", "brier_ts", "nll_ts"):
        entry = metrics[f"probe/{name}"]
        assert len(entry["values"]) == 2 and entry["ci95"][0] <= entry["ci95"][1]
    assert metrics["probe/ece_ts"]["mean"] < metrics["probe/ece"]["mean"]
    # the fold-f0 value recomputed by hand: the temperature comes from fold f0's slice only
    c = p["calibration"]
    rows = [i for i, f in enumerate(c["fold"]) if f == "f0"]
    t0 = cal.fit_temperature(np.array([LABELS.index(c["true"][i]) for i in rows]), np.array(c["proba"])[rows])
    test0 = [i for i, f in enumerate(p["fold"]) if f == "f0"]
    scaled = cal.apply_temperature(np.array(p["proba"])[test0], t0)
    assert metrics["probe/ece_ts"]["values"][0] == pytest.approx(
        cal.ece(np.array([LABELS.index(p["true"][i]) for i in test0]), scaled))


def test_temperature_ignores_test_cells():
    """Relabelling every test cell leaves the fitted temperatures unchanged (they come from the
    training slice alone); another slice changes them; raw numbers never depend on the slice."""
    p = variant_with_slice()
    folds = np.asarray(p["fold"])
    flipped = dict(p, true=[LABELS[(LABELS.index(t) + 1) % 3] for t in p["true"]],
                   proba=np.roll(np.asarray(p["proba"]), 1, axis=0).tolist())
    assert cal._temperatures(flipped, LABELS, folds) == cal._temperatures(p, LABELS, folds)
    other = dict(p, calibration=variant_with_slice(seed=5)["calibration"])
    assert cal._temperatures(other, LABELS, folds) != cal._temperatures(p, LABELS, folds)
    base = score_predictions({"v": p}, LABELS, "v", n_boot=5)["metrics"]
    changed = score_predictions({"v": other}, LABELS, "v", n_boot=5)["metrics"]
    assert changed["v/ece_ts"]["mean"] != base["v/ece_ts"]["mean"]
    assert changed["v/ece"] == base["v/ece"]


def test_cell_probe_slice_is_training_only():
    from hemabench.tasks import TASKS, TaskInput

    rng = np.random.default_rng(0)
    n = 90
    labels = np.array(LABELS * 30)
    records = pd.DataFrame({"path": [f"img{i}.png" for i in range(n)], "label": labels, "fine_label": labels})
    features = (rng.normal(size=(n, 6)) + np.eye(6)[[LABELS.index(x) for x in labels]] * 2).astype(np.float32)
    parts = np.array(["f0", "f1", "f2"] * 30)
    rotations = [{"train": [a for a in ("f0", "f1", "f2") if a != t], "test": [t]} for t in ("f0", "f1", "f2")]
    data = TaskInput(features=features, records=records, parts=parts, rotations=rotations,
                     valid=np.ones(n, bool), device="cpu", dataset="synth")
    preds = TASKS.get("cell-probe").evaluate(data).variants["probe"]
    c = preds["calibration"]
    assert len(c["id"]) > 0 and c["fraction"] == cal.SLICE_FRACTION
    part_of = dict(zip(records["path"], parts))
    for i, fold in zip(c["id"], c["fold"]):
        assert part_of[i] != fold  # every slice cell is a training cell of the fold it calibrates
    assert np.asarray(preds["proba"]).shape == (n, 3)
    assert np.allclose(np.asarray(preds["proba"]).sum(axis=1), 1)


def test_large_probabilities_are_packed_and_a_matek_bm_size_result_stays_small(tmp_path):
    """~34,000 test cells x 21 classes (Matek bone marrow's 20% test split) plus a 27,000-cell slice."""
    import json

    from hemabench.results import predictions_payload
    from hemabench.results.packing import PACK_ABOVE, pack_proba, proba_array
    from hemabench.tasks import Predictions

    small = np.array([[0.1234567, 0.8765433]])
    assert pack_proba(small) == [[0.123457, 0.876543]]
    rng = np.random.default_rng(0)
    n, k = 34_000, 21
    z = rng.normal(size=(n, k)) * 2
    z[np.arange(n), rng.integers(0, k, n)] += 9  # a confident probe
    proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    packed = pack_proba(proba)
    assert proba.size > PACK_ABOVE and isinstance(packed, dict)
    assert np.abs(proba_array(packed) - proba).max() < 1e-3  # float16: 3 significant digits
    tampered = dict(packed, sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        proba_array(tampered)
    labels = [f"C{j:02d}" for j in range(k)]
    ids = np.array([f"BM_cytomorphology_data/C{j % k:02d}/0001-1000/C{j % k:02d}_{j:05d}.jpg" for j in range(n)])
    true = np.asarray(labels)[rng.integers(0, k, n)]
    columns = {"id": ids, "fold": np.full(n, "test"), "true": true, "pred": np.asarray(labels)[proba.argmax(1)],
               "proba": proba, "calibration": cal.slice_payload(ids[:27_000], ["test"] * 27_000, true[:27_000],
                                                                proba[:27_000], fraction=0.2, seed=0)}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"predictions": predictions_payload(Predictions({"probe": columns}))}, indent=1,
                               default=float))  # as Result.write writes a result
    size = path.stat().st_size
    print(f"\nMatek-BM-size probe predictions with probabilities and slice: {size / 2**20:.1f} MiB")
    assert size < 10 * 2**20
    stored = json.loads(path.read_text())["predictions"]["probe"]
    assert proba_array(stored["proba"]).shape == (n, k)


def test_label_efficiency_recorded_repetition_is_the_sweeps_fit():
    """The recorded repetition refits the sweep's support set: same confusion matrix as the sweep's
    repetition; its temperature slice avoids both the support set and the test cells."""
    from sklearn.metrics import confusion_matrix

    from hemabench.protocols.fewshot import support_permutations, support_set, sweep
    from hemabench.tasks.calibration_refit import recorded_variants

    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 40)
    features = rng.normal(size=(120, 5)) + np.eye(5)[np.repeat([0, 1, 2], 40)] * 2.5
    paths = np.array([f"x/{i}.png" for i in range(120)])
    test = np.arange(0, 120, 3)
    train = np.setdiff1d(np.arange(120), test)
    perms = support_permutations(train, labels, 2, seed=0)
    swept = sweep(features, labels, perms, features[test], labels[test], LABELS, (5,), ("svm", "lr"), seed=0, n_jobs=1)
    settings = {"repetition": 1, "n": 5, "classifiers": ["svm", "lr"], "slice": 0.25, "slice_seed": 0}
    out = recorded_variants(features, labels, paths, perms[1], train, test, LABELS, settings, seed=0)
    for clf in ("svm", "lr"):
        v = out[f"{clf}/n=5/rep001"]
        assert np.array_equal(confusion_matrix(v["true"], v["pred"], labels=LABELS), swept["confusions"][(clf, 5)][1])
        held = set(v["calibration"]["id"])
        assert held and not held & set(paths[test]) and not held & set(paths[support_set(perms[1], 5)])
        assert np.allclose(np.asarray(v["proba"]).sum(axis=1), 1)


def test_transfer_recorded_direct_fit_is_the_sweeps_and_merges_probabilities():
    """bm-to-blood's recorded direct repetition: fitted on the source's support set (the sweep's:
    same confusion matrix through the class mapping), tested on the target, merged classes'
    probabilities summed; its slice is source training cells outside the support set."""
    from sklearn.metrics import confusion_matrix

    from hemabench.protocols.fewshot import fit_proba, support_permutations, support_set, sweep
    from hemabench.tasks.calibration_refit import recorded_variants

    rng = np.random.default_rng(1)
    source_classes, merge, scored = ["a", "b", "c", "c2"], {"c2": "c"}, LABELS
    s_labels = np.repeat(source_classes, 30)
    centres = {"a": 0, "b": 1, "c": 2, "c2": 3}
    s_x = rng.normal(size=(120, 5)) + np.eye(5)[[centres[c] for c in s_labels]] * 2.5
    t_labels = np.repeat(scored, 15)
    t_x = rng.normal(size=(45, 5)) + np.eye(5)[[centres[c] for c in t_labels]] * 2.0 + 0.3
    s_paths, t_paths = np.array([f"bm/{i}.png" for i in range(120)]), np.array([f"pb/{i}.png" for i in range(45)])
    s_train, t_test = np.arange(120), np.arange(45)
    perms = support_permutations(s_train, s_labels, 2, seed=0)
    map_pred = lambda p: np.asarray([merge.get(x, x) for x in p])  # noqa: E731
    swept = sweep(s_x, s_labels, perms, t_x, t_labels, scored, (6,), ("svm",), seed=0, n_jobs=1, map_pred=map_pred)
    settings = {"repetition": 1, "n": 6, "classifiers": ["svm"], "slice": 0.2, "slice_seed": 0}
    out = recorded_variants(s_x, s_labels, s_paths, perms[1], s_train, t_test, scored, settings, seed=0,
                            target=(t_x, t_labels, t_paths), merge=merge, stem="direct")
    v = out["direct/rep001"]
    assert np.array_equal(confusion_matrix(v["true"], v["pred"], labels=scored), swept["confusions"][("svm", 6)][1])
    assert set(v["id"]) == set(t_paths) and np.allclose(v["proba"].sum(axis=1), 1)
    support = support_set(perms[1], 6)
    classes, raw = fit_proba(s_x[support], s_labels[support], t_x, ("svm",), 0)["svm"]
    assert list(classes) == source_classes
    assert np.allclose(v["proba"], np.column_stack([raw[:, 0], raw[:, 1], raw[:, 2] + raw[:, 3]]))
    held = v["calibration"]
    assert set(held["id"]) <= set(s_paths) - set(s_paths[support_set(perms[1], 6)])
    assert set(held["true"]) <= set(scored)  # source labels through the mapping
    proba = np.asarray(held["proba"])
    assert np.allclose(proba.sum(axis=1), 1) and proba.shape[1] == len(scored)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_replicates_equal_scoring_the_redrawn_cells(seed):
    """Each bootstrap replicate (integer weights) equals the metric of the cells drawn that often."""
    rng = np.random.default_rng(seed)
    n, k = 40, 4
    z = rng.normal(size=(n, k)) * 2
    proba = np.round(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), 2)  # rounded: tied confidences
    proba /= proba.sum(axis=1, keepdims=True)
    true = rng.integers(0, k, n)
    weights = rng.integers(0, 4, (6, n)).astype(float)
    got = cal.weighted_metrics(weights, true, proba)
    for b, w in enumerate(weights):
        rows = np.repeat(np.arange(n), w.astype(int))
        for name, fn in cal.FNS.items():
            assert got[name][b] == pytest.approx(fn(true[rows], proba[rows]), abs=1e-12), name


def test_debiased_ece_by_hand():
    """Two bins: confidence 0.95 (4 cells, 1 right) and 0.65 (3 cells, none right), computed by hand;
    a bin whose accuracy is as noisy as its gap floors the estimate at 0."""
    top = np.array([0.95] * 4 + [0.65] * 3)
    proba = np.stack([top, 1 - top], axis=1)
    true = np.array([0, 1, 1, 1, 1, 1, 1])
    squared = (4 * ((0.25 - 0.95) ** 2 - 0.25 * 0.75 / 3) + 3 * (0.65 ** 2 - 0)) / 7
    assert cal.ece_debiased(true, proba) == pytest.approx(np.sqrt(squared))
    assert cal.ece(true, proba) == pytest.approx((4 * 0.7 + 3 * 0.65) / 7)
    assert cal.ece_debiased(np.array([0, 0, 0, 1, 0, 1, 1]), proba) == 0.0  # 0.75 right at 0.95 in 4 cells: noise


def test_debiased_ece_sees_through_binning_noise_of_a_calibrated_model():
    """A perfectly calibrated model on 150 cells: the 15-bin ECE is mostly noise (about 0.07 here), the
    debiased estimate stays near 0; a model 15 points overconfident is found by both."""
    rng = np.random.default_rng(0)
    plain, debiased, over = [], [], []
    for _ in range(200):
        confidence = rng.uniform(0.5, 1.0, 150)
        hit = rng.random(150) < confidence
        proba = np.stack([confidence, 1 - confidence], axis=1)
        true = np.where(hit, 0, 1)
        plain.append(cal.ece(true, proba))
        debiased.append(cal.ece_debiased(true, proba))
        sharp = np.clip(confidence + 0.15, 0, 0.999)
        over.append(cal.ece_debiased(true, np.stack([sharp, 1 - sharp], axis=1)))
    assert np.mean(plain) > 0.05 and np.mean(debiased) < 0.5 * np.mean(plain)
    assert np.mean(over) > 0.10
