"""Issue 23, items 1-10: each forgery an attacker tried, reproduced on a copy of a committed reference
and rescored consistently (numbers recomputed from the forged predictions, as hemabench would), must
be rejected by `validate` or by the whole-result comparison of `check --reproduce`, with one line per
problem, and never shown "verified"; the honest references pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_reference_submission
from test_trust import consistent

from hemabench.results import Result
from hemabench.submissions import trust
from hemabench.submissions.compare import TOLERANCE, tolerance_problem
from hemabench.submissions.validate import validate_result

REFERENCES = Path(__file__).resolve().parents[1] / "submissions"


def reference(encoder: str, result: str) -> dict:
    return json.loads((REFERENCES / encoder / "results" / result).read_text())


def errors_of(tmp_path: Path, result: dict, name: str = "forged.json") -> list[str]:
    path = tmp_path / name
    path.write_text(json.dumps(result))
    problems = [p for p in validate_result(path, name) if p.level == "error"]
    assert all("\n" not in str(p) for p in problems)
    return [str(p) for p in problems]


def compare_results(stored: dict, fresh: dict, tolerance: float = TOLERANCE):
    """The comparison of two result documents (as ``check --reproduce`` compares a stored result and its re-run)."""
    from hemabench.submissions.compare import compare_results as compare

    return compare(Result.from_dict(stored), Result.from_dict(fresh), tolerance)


def fields(comparison) -> list[str]:
    return [where for where, _ in comparison.problems]


def test_honest_references_validate_with_every_derived_number(tmp_path):
    for result in ("label-efficiency/synth-bm.json", "bm-to-blood/synth-blood.json", "blood-shift/synth-blood.json",
                   "cell-probe/synth-bm.json", "aml-mil/synth-aml.json"):
        assert errors_of(tmp_path, reference("handcrafted", result)) == [], result


@pytest.mark.parametrize("result", ["label-efficiency/synth-bm.json", "bm-to-blood/synth-blood.json"])
def test_1_auc_max_n_is_re_derived_from_the_registered_split(tmp_path, result):
    honest = reference("handcrafted", result)
    forged = json.loads(json.dumps(honest))
    forged["extra"]["auc_max_n"] = 2000
    consistent(forged)
    auc = next(k for k in honest["metrics"] if k.endswith("balanced_accuracy_auc"))
    assert forged["metrics"][auc]["mean"] > honest["metrics"][auc]["mean"] + 0.05  # the forgery pays
    assert errors_of(tmp_path, forged) == [f"forged.json: extra.auc_max_n: stored 2000 but the registered split and "
                                           f"the task parameters give {honest['extra']['auc_max_n']}"]
    assert trust.tier_of(Result.from_dict(forged)) == trust.SELF_REPORTED
    assert "extra.auc_max_n" in fields(compare_results(forged, honest))


def test_2_probabilities_rewritten_with_pred_kept_are_compared(tmp_path):
    honest = reference("handcrafted", "cell-probe/synth-bm.json")
    forged = json.loads(json.dumps(honest))
    p, labels = forged["predictions"]["probe"], forged["labels"]
    rows = []
    for pred, true in zip(p["pred"], p["true"]):
        row = [0.01] * len(labels)
        row[labels.index(pred)] = 0.6 if pred != true else 0.9
        row[labels.index(true)] = 0.3 if pred != true else 0.9
        rows.append([x / sum(row) for x in row])
    p["proba"] = rows
    consistent(forged)
    assert forged["metrics"]["probe/roc_auc_macro"]["mean"] > honest["metrics"]["probe/roc_auc_macro"]["mean"] + 0.01
    assert errors_of(tmp_path, forged) == []  # consistent: only a re-run can tell
    comparison = compare_results(forged, honest)
    assert 'predictions["probe"].proba' in fields(comparison)
    assert any(w.startswith('metrics["probe/nll') for w in fields(comparison))


def test_3_tolerance_is_validated_and_five_forged_predictions_fail(tmp_path, capsys):
    from hemabench.cli import main

    for bad in (float("nan"), 2, 1.0, -0.1, math.inf, True):
        assert tolerance_problem(bad), bad
    assert tolerance_problem(0) is None and tolerance_problem(TOLERANCE) is None
    for text in ("nan", "2", "inf", "x"):
        with pytest.raises(SystemExit) as exit_:
            main(["check", "--reproduce", str(tmp_path), "--tolerance", text])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"argument --tolerance: expected a finite share of prediction cells, 0 <= t < 1, " \
                                          f"got {text!r}" in err and "Traceback" not in err
    for encoder in ("resnet18-random", "handcrafted"):  # a converged probe; one stopped at max_iter
        honest = reference(encoder, "cell-probe/synth-bm.json")
        forged = json.loads(json.dumps(honest))
        p, labels = forged["predictions"]["probe"], forged["labels"]
        margin = [max(q) - q[labels.index(t)] for q, t in zip(p["proba"], p["true"])]  # the honest run's
        wrong = sorted((i for i, (t, y) in enumerate(zip(p["true"], p["pred"])) if t != y), key=lambda i: -margin[i])[:5]
        for i in wrong:
            p["pred"][i] = p["true"][i]
        comparison = compare_results(consistent(forged), honest)
        assert any("not a near-tie" in m for _, m in comparison.problems), (encoder, comparison.problems)
    many = reference("resnet18-random", "cell-probe/synth-bm.json")
    assert any("131 predictions are not what the re-run gives (tolerance 1.00%)" in m
               for _, m in compare_results(many, consistent(_flip_near_ties(many, 2)), tolerance=0.01).problems)


def _flip_near_ties(result: dict, n: int) -> dict:
    """A copy with the n cells closest to a tie predicted as their runner-up class (honest-looking noise)."""
    copy = json.loads(json.dumps(result))
    p, labels = copy["predictions"]["probe"], copy["labels"]
    gaps = sorted(range(len(p["pred"])), key=lambda i: sorted(p["proba"][i])[-1] - sorted(p["proba"][i])[-2])
    for i in gaps[:n]:
        p["pred"][i] = labels[int(np.argsort(p["proba"][i])[-2])]
    return copy


def test_4_blood_shift_cells_are_the_registered_test_sets_under_the_mapping(tmp_path):
    forged = reference("handcrafted", "blood-shift/synth-blood.json")
    own, shifted = forged["predictions"]["in-domain"], forged["predictions"]["shifted"]
    index = forged["extra"]["robustness_index"]  # its cells stay: a forger cannot rebuild their neighbours
    table = set(zip(index["centre"], index["id"]))
    right = {(f, i) for f, i, t, y in zip(own["fold"], own["id"], own["true"], own["pred"]) if t == y or (f, i) in table}
    for columns in (own, shifted):  # every other mispredicted cell dropped (shifted cells must stay in-domain cells)
        keep = [n for n, (f, i, t, y) in enumerate(zip(columns["fold"], columns["id"], columns["true"], columns["pred"]))
                if (t == y or (columns is own and (f, i) in table)) and (f.rpartition("->")[2], i) in right]
        for key in ("id", "fold", "true", "pred", "proba"):
            columns[key] = [columns[key][n] for n in keep]
    consistent(forged)
    assert forged["metrics"]["shift/mean_balanced_accuracy"]["mean"] == 1.0
    errors = errors_of(tmp_path, forged)
    assert errors and all("registered test cells the mapping scores" in e for e in errors), errors
    assert 'forged.json: predictions["in-domain"] fold synth-bm:' in "\n".join(errors)


def test_5_ci_tier_only_for_the_unchanged_committed_reference(tmp_path):
    honest = reference("handcrafted", "cell-probe/synth-bm.json")
    tier, badge = trust.trust_of(Result.from_dict(honest))
    assert tier == trust.VERIFIED and "re-runs on every commit" in badge and "every prediction, probability" in badge
    swapped = json.loads(json.dumps(honest))
    p = swapped["predictions"]["probe"]
    confident = [i for i, (t, y) in enumerate(zip(p["true"], p["pred"])) if t != y][1:3]  # margins 0.9 and 0.2
    for i in confident:
        p["pred"][i] = p["true"][i]
    consistent(swapped)
    assert trust.trust_of(Result.from_dict(swapped))[0] == trust.SELF_REPORTED  # a --results copy with other numbers
    assert any("not a near-tie" in m for _, m in compare_results(swapped, honest, tolerance=0.5).problems)
    reprobed = json.loads(json.dumps(honest))
    reprobed["predictions"]["probe"]["proba"][0] = [1.0] + [0.0] * (len(honest["labels"]) - 1)
    assert trust.trust_of(Result.from_dict(consistent(reprobed)))[0] == trust.SELF_REPORTED


def test_6_temperature_slice_ids_are_training_records(tmp_path):
    forged = reference("handcrafted", "cell-probe/synth-bm.json")
    cal = forged["predictions"]["probe"]["calibration"]
    cal["id"] = [f"BAS/slice_{i:04d}.png" for i in range(len(cal["id"]))]
    errors = errors_of(tmp_path, consistent(forged))
    assert errors == [f'forged.json: predictions["probe"].calibration: {len(cal["id"])} slice cells are not training '
                      "records of the registered split (e.g. 'BAS/slice_0000.png' in 'test')"]


def test_7_repetitions_follow_the_parameters(tmp_path):
    honest = reference("handcrafted", "label-efficiency/synth-bm.json")
    renamed = json.loads(json.dumps(honest))
    for columns in renamed["predictions"].values():
        if "confusions" in columns:
            columns["fold"] = ["rep000"] * len(columns["fold"])
    assert any("must be rep000 .. rep009" in e for e in errors_of(tmp_path, consistent(renamed)))
    best5 = json.loads(json.dumps(honest))
    for columns in best5["predictions"].values():
        if "confusions" in columns:
            columns["fold"], columns["confusions"] = columns["fold"][:5], columns["confusions"][:5]
    assert any("repetitions = 10 in the parameters" in e for e in errors_of(tmp_path, consistent(best5)))
    best = json.loads(json.dumps(honest))
    for columns in best["predictions"].values():
        if "confusions" in columns:
            top = max(columns["confusions"], key=lambda m: np.trace(np.asarray(m)))
            columns["confusions"] = [top] * len(columns["confusions"])
    consistent(best)
    assert best["metrics"]["svm/balanced_accuracy_auc"]["mean"] > honest["metrics"]["svm/balanced_accuracy_auc"]["mean"]
    assert 'predictions["svm/n=1"]' in fields(compare_results(best, honest))


def test_8_encoder_cost_is_tied_to_the_spec_and_plausible(tmp_path):
    forged = reference("resnet18-random", "cell-probe/synth-bm.json")
    forged["encoder_cost"].update(parameters=1, embedding_dim=99999, gflops_per_image=1e-9,
                                  forward_images_per_s=1e308, peak_memory_mb=float("inf"))
    errors = errors_of(tmp_path, forged)
    for field in ("parameters", "embedding_dim", "gflops_per_image", "forward_images_per_s", "peak_memory_mb"):
        assert any(f"encoder_cost.{field}:" in e for e in errors), (field, errors)
    honest = reference("resnet18-random", "cell-probe/synth-bm.json")
    assert [w for w in fields(compare_results(forged, honest)) if w.startswith("encoder_cost")] == [
        "encoder_cost.embedding_dim", "encoder_cost.gflops_per_image", "encoder_cost.parameters"]


def test_9_changed_parameters_are_compared_and_never_ci_verified(tmp_path):
    honest = reference("handcrafted", "cell-probe/synth-bm.json")
    forged = json.loads(json.dumps(honest))
    forged["task_metadata"]["params"].update(max_iter=7, C=123)
    assert trust.tier_of(Result.from_dict(forged)) == trust.SELF_REPORTED
    assert "task_metadata.params.C" in fields(compare_results(forged, honest))


@pytest.mark.slow
def test_9_and_10_check_reproduce_end_to_end(tmp_path):
    """The unmodified reference whose probe stops at max_iter passes at the default tolerance (item 10);
    the same predictions under changed parameters do not (item 9)."""
    from hemabench.submissions.reproduce import reproduce

    result = "results/cell-probe/synth-bm.json"
    folder = copy_reference_submission(tmp_path, result)
    report = reproduce(folder, device="cpu", record=False)
    assert report.problems == [], report.problems
    forged = json.loads((folder / result).read_text())
    forged["task_metadata"]["params"].update(max_iter=7)
    (folder / result).write_text(json.dumps(forged))
    report = reproduce(folder, device="cpu", record=False)
    assert report.problems and all(p.field.startswith(("predictions", "metrics", "extra")) for p in report.problems)
