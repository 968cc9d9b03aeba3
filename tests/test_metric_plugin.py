"""A headline metric needs only its registration: one registered from a temporary module named by
``HEMABENCH_PLUGINS`` is computed for every variant by ``run``, recomputed by ``validate`` and named
on the leaderboard, with no other file edited (README "Adding a metric" lists exactly that, plus
the scikit-learn counterpart in tests/test_metrics.py for a metric the project ships)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import recall_score
from test_plugins import hemabench, plugin_env, submitted, validate_forged

from hemabench.leaderboard.names import metric_label
from hemabench.results.metrics import HEADLINE, metric_names, register_metric
from hemabench.results.scoring import score_predictions
from hemabench.tasks.plugins import VARIABLE

PLUGIN = '''"""A toy headline metric: the sensitivity of the worst-recognised class."""

import numpy as np

from hemabench.results.metrics import register_metric


@register_metric("worst_class_sensitivity", "worst-class sensitivity")
def worst_class_sensitivity(pc):
    return np.where(pc["support"] > 0, pc["sensitivity"], np.inf).min(axis=-1)  # classes in y_true only
'''
NAME = "worst_class_sensitivity"
BUILT_IN = ("accuracy", "balanced_accuracy", "weighted_f1", "macro_f1")


def worst_recall(true, pred) -> float:
    """The independent number: scikit-learn's per-class recall, smallest over the classes in ``true``."""
    return float(recall_score(true, pred, labels=np.unique(true), average=None, zero_division=0).min())


def fold_values(p: dict) -> list[float]:
    true, pred, folds = (np.asarray(p[k]) for k in ("true", "pred", "fold"))
    return [worst_recall(true[folds == f], pred[folds == f]) for f in dict.fromkeys(folds.tolist())]


@pytest.fixture
def toy_metric():
    """The plugin's metric registered in this process, and unregistered after the test."""
    exec(compile(PLUGIN, "toy_metric.py", "exec"), {})
    yield NAME
    HEADLINE.pop(NAME)


def test_a_second_metric_of_a_name_is_refused():
    with pytest.raises(ValueError, match="'balanced_accuracy' is already registered"):
        register_metric("balanced_accuracy", "something else")(lambda pc: pc["tp"])
    with pytest.raises(ValueError, match="must be an identifier"):
        register_metric("k20/worst", "worst")
    with pytest.raises(ValueError, match="'patient_accuracy' is taken"):  # BreakHis's per-patient number
        register_metric("patient_accuracy", "patient accuracy")(lambda pc: pc["tp"])
    assert metric_names() == BUILT_IN


def test_a_registered_metric_is_scored_after_the_built_ins_and_named(toy_metric):
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    true = rng.choice(labels, 300, p=[0.6, 0.3, 0.1])
    pred = np.where(rng.random(300) < 0.7, true, rng.choice(labels, 300))
    p = {"true": true.tolist(), "pred": pred.tolist(), "fold": np.repeat(["f0", "f1", "f2"], 100).tolist()}
    metrics = score_predictions({"v": p}, labels, "v", n_boot=200)["metrics"]
    assert list(metrics)[:5] == [f"v/{name}" for name in (*BUILT_IN, NAME)]
    score = metrics[f"v/{NAME}"]
    assert score["values"] == pytest.approx(fold_values(p), abs=1e-12)
    assert 0.0 <= score["ci95"][0] <= score["mean"] <= score["ci95"][1] <= 1.0
    assert metric_label(f"v/{NAME}") == "worst-class sensitivity ↑ (v)"


@pytest.mark.slow
def test_a_metric_from_its_module_alone_is_run_validated_and_shown(tmp_path):
    (tmp_path / "toy_metric.py").write_text(PLUGIN)
    env = plugin_env(tmp_path / "toy_metric.py")
    run = hemabench("run", "--encoder", "handcrafted", "--task", "cell-knn", "--dataset", "synth-bm",
                    "--out", tmp_path / "results", "--no-progress", env=env)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "results" / "handcrafted" / "cell-knn" / "synth-bm.json").read_text())
    for variant, p in result["predictions"].items():  # k1 and k20
        assert result["metrics"][f"{variant}/{NAME}"]["values"] == pytest.approx(fold_values(p), abs=1e-12)

    folder = submitted(tmp_path / "results", tmp_path / "subs", env)
    valid = hemabench("validate", folder, env=env)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    rejected = validate_forged(folder, f"k20/{NAME}", env)
    assert rejected.returncode != 0 and f"k20/{NAME}" in rejected.stdout

    site = tmp_path / "site"
    built = hemabench("leaderboard", "build", "--submissions", tmp_path / "subs", "--out", site, "--no-figures", env=env)
    assert built.returncode == 0, built.stderr
    page = next((site / "tasks").glob("cell-knn--synth-bm*.html")).read_text()
    assert "worst_class_sensitivity<span class=\"sub\"> worst-class sensitivity ↑" in page  # a ranking column
    assert "worst-class sensitivity ↑ (k1), %" in page and "worst-class sensitivity ↑ (k20), %" in page  # all metrics

    no_plugin = hemabench("validate", folder, env={**env, VARIABLE: ""})  # without the module: a number nothing gives
    assert no_plugin.returncode != 0 and f'metrics["k20/{NAME}"]: is stored but the predictions do not give it' \
        in no_plugin.stdout
