"""A task needs only its module: one written into a temporary folder and named by
``HEMABENCH_PLUGINS`` goes through ``run`` -> ``submit`` -> ``validate`` -> ``leaderboard build``
with no other file edited (README "Adding a task" lists exactly that module, plus docs and
suites, which the test does not need)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hemabench.tasks.plugins import VARIABLE

TOY = '''"""A toy task: the nearest class mean of the training embeddings."""

from dataclasses import dataclass

import numpy as np

from hemabench.tasks import TASKS
from hemabench.tasks.base import Task, per_fold
from hemabench.tasks.needs import Needs
from hemabench.tasks.params import one_of


@dataclass(frozen=True)
class NearestMean(Task):
    param_rules = {"distance": one_of("euclidean", "cosine")}

    def evaluate(self, data):
        labels = data.records[self.label_column].to_numpy().astype(str)
        X = np.asarray(data.features, dtype=np.float64)
        if self.params["distance"] == "cosine":
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

        def fit_predict(train, test):
            classes = np.unique(labels[train])
            means = np.stack([X[train][labels[train] == c].mean(axis=0) for c in classes])
            return {"centroid": classes[((X[test][:, None, :] - means[None]) ** 2).sum(-1).argmin(axis=1)]}

        return per_fold(data, labels, fit_predict, desc=self.name)


TASKS.add("toy-centroid", NearestMean(
    name="toy-centroid", version=1, description="Nearest class mean on raw embeddings", needs=Needs(),
    protocol="docs/protocols.md#cell-knn", main_metric="centroid/balanced_accuracy", variants=("centroid",),
    params={"distance": "euclidean"}, family="toy family", citation="tests/test_plugins.py",
))
'''


def hemabench(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hemabench", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def plugin_env(module: Path) -> dict:
    """The environment of a ``hemabench`` command run from this checkout with ``module`` as its plugin."""
    return {**os.environ, VARIABLE: str(module), "PYTHONPATH": str(Path(__file__).parents[1])}


def submitted(results: Path, subs: Path, env: dict) -> Path:
    """``submit`` the handcrafted results, with the statement a submission must carry filled in; its folder."""
    assert hemabench("submit", "--encoder", "handcrafted", "--results", results, "--submissions", subs,
                     env=env).returncode == 0
    folder = subs / "handcrafted"
    meta = yaml.safe_load((folder / "encoder.yaml").read_text())
    meta["submission"].update(submitted_by="a test", contact="test@example.org", not_trained_on_test_splits=True,
                              statement="Hand-crafted features: nothing is trained.")
    (folder / "encoder.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


def validate_forged(folder: Path, key: str, env: dict) -> subprocess.CompletedProcess:
    """``validate`` with the mean of ``key`` in the submission's synth-bm result moved by 0.1 (restored after)."""
    stored = next(folder.rglob("synth-bm.json"))
    honest = stored.read_text()
    forged = json.loads(honest)
    forged["metrics"][key]["mean"] += 0.1
    stored.write_text(json.dumps(forged, indent=1))
    try:
        return hemabench("validate", folder, env=env)
    finally:
        stored.write_text(honest)


@pytest.mark.slow
def test_a_task_from_its_module_alone_runs_validates_and_reaches_the_leaderboard(tmp_path):
    (tmp_path / "toy_task.py").write_text(TOY)
    env = plugin_env(tmp_path / "toy_task.py")
    listed = hemabench("list", "tasks", "--json", env=env)
    toy = next(t for t in json.loads(listed.stdout)["tasks"] if t["task"] == "toy-centroid")
    assert "synth-bm" in toy["datasets"]  # derived from its needs, never listed by hand

    run = hemabench("run", "--encoder", "handcrafted", "--task", "toy-centroid", "--dataset", "synth-bm",
                    "--out", tmp_path / "results", "--no-progress", env=env)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "results" / "handcrafted" / "toy-centroid" / "synth-bm.json").read_text())
    preds = result["predictions"]["centroid"]
    true, pred, folds = (np.array(preds[k]) for k in ("true", "pred", "fold"))
    per_fold = [np.mean([np.mean(pred[(folds == f) & (true == c)] == c) for c in np.unique(true[folds == f])])
                for f in result["split"]["folds"]]  # balanced accuracy: mean recall over the classes present
    assert result["metrics"]["centroid/balanced_accuracy"]["values"] == pytest.approx(per_fold)
    assert result["task_metadata"]["params"] == {"distance": "euclidean"}

    folder = submitted(tmp_path / "results", tmp_path / "subs", env)
    valid = hemabench("validate", folder, env=env)
    assert valid.returncode == 0, valid.stdout + valid.stderr

    rejected = validate_forged(folder, "centroid/balanced_accuracy", env)  # validate recomputes the toy task's numbers
    assert rejected.returncode != 0 and "centroid/balanced_accuracy" in rejected.stdout

    site = tmp_path / "site"
    built = hemabench("leaderboard", "build", "--submissions", tmp_path / "subs", "--out", site, "--no-figures", env=env)
    assert built.returncode == 0, built.stderr
    index = (site / "index.html").read_text()
    assert "toy family" in index and "toy-centroid" in index
    page = next((site / "tasks").glob("toy-centroid--synth-bm*.html")).read_text()
    assert f"{100 * result['metrics']['centroid/balanced_accuracy']['mean']:.1f}" in page

    no_plugin = hemabench("validate", folder, env={**env, VARIABLE: ""})  # without the module: not a known task
    assert no_plugin.returncode != 0 and "toy-centroid" in no_plugin.stdout + no_plugin.stderr
