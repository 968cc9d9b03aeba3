"""Task ``robustness``: capped cells, perturbed views through the cache, scores recomputable from predictions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from hemabench.results import Result
from hemabench.tasks.robustness import capped_rows, cosine_rows
from hemabench.tasks.robustness_scores import normalised_auc, robustness_scores

LABELS = ["a", "b", "c"]


def test_capped_rows_keep_classes_balanced_and_depend_only_on_the_seed():
    labels = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 3)
    rows = np.arange(23)
    chosen = capped_rows(rows, labels, 9, seed=0)
    assert len(chosen) == 9 and list(np.unique(labels[chosen], return_counts=True)[1]) == [3, 3, 3]
    assert np.array_equal(chosen, capped_rows(rows, labels, 9, seed=0))
    assert not np.array_equal(chosen, capped_rows(rows, labels, 9, seed=1))
    short = capped_rows(rows, labels, 15, seed=0)  # c has 3 cells: the others share the rest
    assert sorted(np.unique(labels[short], return_counts=True)[1].tolist()) == [3, 6, 6]
    assert np.array_equal(capped_rows(rows, labels, 100, seed=0), rows)


def test_cosine_rows_against_a_direct_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    expected = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    np.testing.assert_allclose(cosine_rows(a, b), expected, rtol=1e-12)
    assert cosine_rows(np.zeros((1, 3)), np.zeros((1, 3)))[0] == 1.0
    assert cosine_rows(np.zeros((1, 3)), np.ones((1, 3)))[0] == 0.0


def test_normalised_area_by_hand():
    # clean 0.8; severities 1..5: 0.8, 0.6, 0.4, 0.4, 0.0 -> trapezoids 0.8 + 0.7 + 0.5 + 0.4 + 0.2 = 2.6
    value = normalised_auc(np.array([0.8]), np.array([[0.8, 0.6, 0.4, 0.4, 0.0]]), [1, 2, 3, 4, 5])
    assert value[0] == pytest.approx(2.6 / (5 * 0.8))
    flat = normalised_auc(np.array([0.5]), np.array([[0.5, 0.5]]), [2, 5])  # a sparser grid, no loss
    assert flat[0] == pytest.approx(1.0)


def _predictions(rng, n=30):
    ids = [f"cell{i:02d}.jpg" for i in range(n)]
    true = np.array(LABELS * (n // 3))
    base = {"id": ids, "fold": ["test"] * n, "true": true.tolist()}
    flip = lambda p: np.where(rng.random(n) < p, rng.choice(LABELS, n), true).tolist()  # noqa: E731
    preds = {"clean": {**base, "pred": flip(0.1)}}
    for family in ("defocus", "geometric"):
        for s in (1, 2):
            preds[f"{family}-s{s}"] = {**base, "pred": flip(0.2 * s), "cosine": (1 - rng.random(n) * 0.1 * s).tolist()}
    return preds


def test_scores_against_scikit_learn_and_numpy():
    preds = _predictions(np.random.default_rng(1))
    out = robustness_scores(preds, LABELS, ["defocus", "geometric"], [1, 2], "geometric", seed=0, n_boot=200)
    ba = {v: balanced_accuracy_score(p["true"], p["pred"]) for v, p in preds.items()}
    for view in ("defocus-s1", "defocus-s2", "geometric-s2"):
        assert out[f"{view}/cosine"]["mean"] == pytest.approx(np.mean(preds[view]["cosine"]), rel=1e-12)
        assert out[f"{view}/drop_balanced_accuracy"]["mean"] == pytest.approx(ba["clean"] - ba[view], rel=1e-12)
        low, high = out[f"{view}/cosine"]["ci95"]
        assert low <= out[f"{view}/cosine"]["mean"] <= high
    true, pred = np.array(preds["clean"]["true"]), np.array(preds["defocus-s2"]["pred"])
    recall = lambda t, p, c: np.mean(p[t == c] == c)  # noqa: E731
    assert out["defocus-s2/drop_sensitivity_b"]["mean"] == pytest.approx(
        recall(true, np.array(preds["clean"]["pred"]), "b") - recall(true, pred, "b"))
    area = (ba["clean"] + 2 * ba["defocus-s1"] + ba["defocus-s2"]) / 2 / (2 * ba["clean"])
    assert out["defocus/normalised_auc"]["mean"] == pytest.approx(area, rel=1e-12)
    assert out["robustness/normalised_auc"]["values"] == [pytest.approx(area)]  # the control is left out
    assert "geometric/normalised_auc" in out


def test_variants_that_hold_other_cells_are_rejected():
    preds = _predictions(np.random.default_rng(2))
    preds["defocus-s2"]["id"] = preds["defocus-s2"]["id"][::-1]
    with pytest.raises(ValueError, match="variant 'defocus-s2' does not hold the clean variant's cells"):
        robustness_scores(preds, LABELS, ["defocus"], [1, 2], "geometric", n_boot=10)


def test_parameters_are_checked():
    from hemabench.errors import HemabenchError
    from hemabench.tasks import TASKS

    task = TASKS.get("robustness")
    with pytest.raises(HemabenchError, match="families must be a non-empty list of stain"):
        task.with_params(families=["blur"])
    with pytest.raises(HemabenchError, match="severities must be increasing integers from 1 to 5"):
        task.with_params(severities=[3, 1])
    with pytest.raises(HemabenchError, match="perturbation_version 0 is not the installed"):
        task.with_params(perturbation_version=0)
    from hemabench.datasets import get_dataset

    assert task.serves(get_dataset("acevedo-mini")) and not task.serves(get_dataset("synth-blood"))


def test_views_come_from_the_cache_on_a_second_run(tmp_path):
    from hemabench.datasets import get_dataset
    from hemabench.datasets.roots import find_root
    from hemabench.embeddings.views import PerturbedImages, extract_views
    from hemabench.encoders import load_encoder

    spec = get_dataset("acevedo-mini")
    found = spec.discover(find_root(spec))
    records = found.records.groupby("label").head(1).reset_index(drop=True)
    encoder = load_encoder("resnet18-random")
    options = {"cache_base": tmp_path, "progress": False, "workers": 0, "device": "cpu"}
    views = [("defocus", 5), ("jpeg", 5)]
    first, n_first = extract_views(encoder, found.root, records, views, **options)
    again, n_again = extract_views(encoder, found.root, records, views, **options)
    assert (n_first, n_again) == (16, 0) and len(list(tmp_path.iterdir())) == 2  # one entry per view
    assert all(np.array_equal(first[v], again[v]) for v in views)
    assert not np.array_equal(first["defocus", 5], first["jpeg", 5])
    digests = {PerturbedImages(found.root, f, s).digest(records["path"]) for f in ("defocus", "noise") for s in (1, 2)}
    assert len(digests) == 4


ROBUST = {"families": ["defocus", "noise"], "max_test_cells": 16}


@pytest.fixture(scope="module", params=["handcrafted", "resnet18-random"])
def demo_run(request, tmp_path_factory):
    """Blur and noise on 16 acevedo-mini test cells (the demo's cap) for one demo encoder, run twice."""
    from hemabench.pipeline.runner import RunOptions, run_plan

    out = tmp_path_factory.mktemp("robust")
    options = RunOptions(out=out, progress=False, device="cpu", task_params={"robustness": ROBUST})
    first = run_plan([request.param], [("robustness", "acevedo-mini")], options)
    options.overwrite = True
    second = run_plan([request.param], [("robustness", "acevedo-mini")], options)
    path = out / request.param / "robustness" / "acevedo-mini.json"
    return first, second, json.loads(path.read_text()), path


def test_blur_and_noise_lower_cosine_monotonically(demo_run):
    _, _, result, _ = demo_run
    for family in ROBUST["families"]:
        curve = [1.0] + [result["metrics"][f"{family}-s{s}/cosine"]["mean"] for s in range(1, 6)]
        assert all(a > b for a, b in zip(curve, curve[1:])), (result["encoder"]["name"], family, curve)


def test_result_records_cells_views_and_validates(demo_run):
    from hemabench.submissions.recompute import score_problems

    first, second, result, _ = demo_run
    assert first.images_forwarded >= 16 * 10 and second.images_forwarded == 0  # re-run: everything cached
    assert result["task_metadata"]["params"]["max_test_cells"] == 16
    assert set(result["predictions"]) == {"clean"} | {f"{f}-s{s}" for f in ROBUST["families"] for s in range(1, 6)}
    clean = result["predictions"]["clean"]
    assert len(clean["id"]) == 16 and sorted(set(clean["true"])) == result["labels"]
    assert result["extra"]["perturbations"]["version"] == 1 and result["extra"]["n_train"] == 160
    assert "views" in result["provenance"]["seconds"]
    assert score_problems(Result.from_dict(result), "r") == []
    tampered = copy.deepcopy(result)
    tampered["predictions"]["noise-s3"]["cosine"][0] -= 0.5
    fields = {p.field for p in score_problems(Result.from_dict(tampered), "r")}
    assert 'metrics["noise-s3/cosine"].mean' in fields and 'metrics["robustness/normalised_auc"].mean' not in fields


def test_integrity_checks_the_sample_against_the_registered_fold(demo_run):
    from hemabench.submissions.integrity import integrity_problems

    _, _, result, _ = demo_run
    assert integrity_problems(Result.from_dict(result), "r") == []
    relabelled = copy.deepcopy(result)  # one cell of another class in every variant: the counts give it away
    for columns in relabelled["predictions"].values():
        other = next(c for c in result["labels"] if c != columns["true"][0])
        columns["true"][0] = other
    problems = integrity_problems(Result.from_dict(relabelled), "r")
    assert len(problems) == len(result["predictions"])
    assert "are not the sample the task draws from the registered fold" in problems[0].message
    doubled = copy.deepcopy(result)
    doubled["predictions"]["clean"]["id"][1] = doubled["predictions"]["clean"]["id"][0]
    assert [p.field for p in integrity_problems(Result.from_dict(doubled), "r")] == ['predictions["clean"] fold fold0']
    whole = copy.deepcopy(result)  # a cap above the fold: the ids must be the registered test set itself
    whole["task_metadata"]["params"]["max_test_cells"] = 1000
    assert "matches no registered test set" in integrity_problems(Result.from_dict(whole), "r")[0].message


def test_demo_suite_runs_robustness_on_real_cells_only():
    from hemabench.pipeline.suites import load_suite

    demo = load_suite("demo")
    assert [d for t, d in demo.plan() if t == "robustness"] == ["acevedo-mini"]
    assert demo.task_params["robustness"]["max_test_cells"] == 16


def test_task_without_views_says_what_is_missing():
    from hemabench.errors import HemabenchError
    from hemabench.tasks import TASKS, TaskInput

    data = TaskInput(features=np.zeros((2, 3), np.float32), records=None, parts=np.array(["train", "test"]),
                     rotations=[{"train": ["train"], "test": ["test"]}], valid=np.ones(2, bool))
    with pytest.raises(HemabenchError, match="needs perturbed views of the test cells"):
        TASKS.get("robustness").evaluate(data)


def test_documented():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    assert "robustness/normalised_auc" in doc and "max_test_cells" in doc


def test_board_shows_curves_areas_and_strips(demo_run, tmp_path):
    from hemabench.leaderboard import build_site

    *_, path = demo_run
    build_site(tmp_path / "site", None, [path.parents[2]])
    page = next((tmp_path / "site" / "tasks").glob("robustness--acevedo-mini--*.html")).read_text()
    assert 'id="s-robustness"' in page and "max_test_cells = 16" in page and 'id="robustness-areas"' in page
    figures = tmp_path / "site" / "figures"
    assert len(list(figures.glob("*-severity.svg"))) == 1
    for family in ROBUST["families"]:
        assert f"robustness-strip-{family}-v1.png" in page and (figures / f"robustness-strip-{family}-v1.png").is_file()


def test_strip_is_the_bundled_cell_at_each_severity(tmp_path):
    from PIL import Image

    from hemabench.images.perturb import perturb
    from hemabench.leaderboard.robustness import STRIP_PX, draw_strip, strip_cell

    draw_strip(tmp_path / "s.png", "defocus")
    file, rel = strip_cell()
    with Image.open(tmp_path / "s.png") as strip, Image.open(file) as cell:
        assert strip.width == 6 * STRIP_PX + 5 * 4
        tiles = [np.asarray(strip.crop((i * (STRIP_PX + 4), 0, i * (STRIP_PX + 4) + STRIP_PX, strip.height)), float)
                 for i in range(6)]
        size = (STRIP_PX, strip.height)
        for s in (0, 5):  # the tile is the task's perturbation of that cell, downscaled
            expected = perturb(cell, "defocus", s, rel).resize(size, Image.Resampling.LANCZOS)
            assert np.abs(tiles[s] - np.asarray(expected, float)).max() <= 1
    assert "neutrophil" in rel


def test_intervals_are_recentred_on_the_estimate_and_clipped_to_each_numbers_range():
    from hemabench.results.intervals import percentile_interval
    from hemabench.tasks.robustness_scores import bounds_of

    replicates = np.linspace(-0.3, 0.1, 401)  # median -0.1
    low, high = percentile_interval(replicates, 0.0, bounds_of("defocus-s1/drop_balanced_accuracy"))
    assert low == pytest.approx(-0.3 + 0.01 + 0.1) and high == pytest.approx(0.1 - 0.01 + 0.1)  # drops may be < 0
    area = bounds_of("robustness/normalised_auc")
    assert percentile_interval(np.full(10, 1.2), 1.25, area) == [1.25, 1.25]  # an area above 1 stays above 1
    assert percentile_interval(np.linspace(0.5, 1.5, 101), 0.95, bounds_of("defocus-s1/cosine")) == pytest.approx([0.475, 1.0])


def test_reproduce_compares_the_stored_cosines_too(demo_run):
    from hemabench.submissions.compare import compare_results

    _, _, result, _ = demo_run
    assert compare_results(Result.from_dict(copy.deepcopy(result)), Result.from_dict(result)).problems == []
    forged = copy.deepcopy(result)
    forged["predictions"]["defocus-s5"]["cosine"][2] = 0.5
    problems = compare_results(Result.from_dict(forged), Result.from_dict(result)).problems
    assert len(problems) == 1 and 'predictions["defocus-s5"].cosine[2]' in str(problems[0])
    forged["predictions"]["defocus-s5"]["cosine"][2] = result["predictions"]["defocus-s5"]["cosine"][2] + 4e-4
    assert compare_results(Result.from_dict(forged), Result.from_dict(result)).problems == []  # within bf16-vs-fp32 agreement
