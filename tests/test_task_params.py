"""Every parameter a task records is one its computation uses: changing it changes what the task
computes, or the value is rejected; unknown keys are rejected; protocol pointers resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hemabench.datasets.aml_hehr import BLAST_COLUMNS
from hemabench.errors import HemabenchError
from hemabench.results.files import predictions_payload
from hemabench.tasks import TASKS, params
from hemabench.tasks.base import TaskInput

ROOT = Path(__file__).resolve().parents[1]
TWO_FOLDS = [{"train": ["p1"], "test": ["p0"]}, {"train": ["p0"], "test": ["p1"]}]


def _input(labels, features, parts, rotations, dataset, **columns) -> TaskInput:
    n = len(labels)
    records = pd.DataFrame({"path": [f"img{i:04d}.png" for i in range(n)], "label": labels,
                            "fine_label": columns.pop("fine_label", labels), **columns})
    return TaskInput(features=features.astype(np.float32), records=records, parts=np.asarray(parts, dtype=object),
                     rotations=rotations, valid=np.ones(n, dtype=bool), device="cpu", seed=0, dataset=dataset)


def cells(classes=("BAS", "EOS", "LYT"), per_class=24, dim=6, seed=0, dataset="synth-bm", holdout=False) -> TaskInput:
    """Separable-ish clusters with columns on very different scales (so standardising matters)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(list(classes), per_class)
    centres = rng.normal(0, 1.5, (len(classes), dim))
    features = centres[np.repeat(np.arange(len(classes)), per_class)] + rng.normal(0, 1, (len(labels), dim))
    features *= np.logspace(0, 3, dim)
    parts = np.where(np.arange(len(labels)) % (3 if holdout else 2) == 0, "p0", "p1")
    rotations = [{"train": ["p1"], "test": ["p0"]}] if holdout else TWO_FOLDS
    return _input(labels, features, parts, rotations, dataset)


def outcome(task, data) -> str:
    """What a task computed: its predictions and extra, timings left out, as canonical JSON."""
    out = task.evaluate(data)
    extra = json.loads(json.dumps(out.extra, default=str))
    for run in extra.get("runs", []):
        run.pop("seconds", None)
    return json.dumps({"predictions": predictions_payload(out), "extra": extra}, sort_keys=True, default=str)


def assert_each_param_matters(base, data, changes: dict) -> None:
    assert set(changes) == set(base.params), f"test every parameter of {base.name}: {set(base.params) ^ set(changes)}"
    reference = outcome(base, data)
    for key, value in changes.items():
        assert outcome(base.with_params(**{key: value}), data) != reference, f"{base.name}: {key} changed nothing"


def test_cell_probe_params_each_change_the_fit():
    data = cells()
    assert_each_param_matters(TASKS.get("cell-probe"), data, {
        "solver": "sklearn", "C": 1e-4, "max_iter": 2, "standardise": True, "calibration_slice": 0.5,
        "calibration_seed": 3})


def test_blood_shift_params_each_change_the_matrix_or_are_rejected():
    base = TASKS.get("blood-shift")
    data = cells(dataset="synth-blood", holdout=True)
    data.panel = {"synth-blood-b": cells(dataset="synth-blood-b", holdout=True, seed=5)}
    reference = outcome(base, data)
    changes = {"solver": "sklearn", "C": 1e-4, "max_iter": 2, "standardise": True, "calibration_slice": 0.5,
               "calibration_seed": 3, "index_k": 2, "index_cells": 2}
    assert set(changes) | {"mapping"} == set(base.params)
    for key, value in changes.items():
        assert outcome(base.with_params(**{key: value}), data) != reference, f"blood-shift: {key} changed nothing"
    with pytest.raises(HemabenchError, match="mapping 'nope' is not a file"):
        base.with_params(mapping="nope")
    with pytest.raises(HemabenchError, match="index_k must be a positive integer, got 0"):
        base.with_params(index_k=0)


def test_cell_knn_params_each_change_the_predictions():
    assert_each_param_matters(TASKS.get("cell-knn"), cells(), {"ks": [3, 20]})


@pytest.fixture
def one_job(monkeypatch):
    monkeypatch.setenv("HEMABENCH_JOBS", "1")


# the stopping rule and the engine: recorded in extra.stopping / extra.engine with what they ran
RULE_CHANGES = {"precision": None, "min_repetitions": 1, "repetition_block": 3, "engine": "reference"}


def test_label_efficiency_params_each_change_the_sweep(one_job):
    base = TASKS.get("label-efficiency").with_params(n_grid=[1, 3], repetitions=2)
    data = cells(holdout=True)
    assert_each_param_matters(base, data, {
        "n_grid": [1, 2], "repetitions": 3, "seed": 1, "classifiers": ["svm", "lr"],
        "svm": {**base.params["svm"], "C": 0.01}, "lr": {**base.params["lr"], "C": 0.001},
        "knn": {"n_neighbors": 1, "weights": "uniform"},
        "calibration": {**base.params["calibration"], "repetition": 1}, **RULE_CHANGES})


def test_transfer_params_each_change_the_sweep(one_job, tmp_path, monkeypatch):
    from hemabench.tasks import transfer

    base = TASKS.get("bm-to-blood").with_params(n_grid=[1, 3], repetitions=2, source_per_class=3)
    target = cells(("BAS", "EOS", "LYT", "MON"), dataset="synth-blood", holdout=True, seed=1)
    target.source = cells(("BAS", "EOS", "LYT", "MON"), dataset="synth-bm", holdout=True, seed=2)
    # a second mapping file, to show the mapping named is the one used (MON scored as LYT)
    mapping = transfer.load_mapping("bm-to-blood")
    alt = {**mapping, "name": "alt", "targets": {"synth-blood": {"scored": ["BAS", "EOS", "LYT"],
                                                                 "merge": {"MON": "LYT"}, "superclasses": {}}}}
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "alt.yaml").write_text(json.dumps(alt))
    (tmp_path / "mappings" / "bm-to-blood.yaml").write_text(json.dumps(mapping))
    monkeypatch.setattr(transfer, "benchmarks_dir", lambda: tmp_path)
    transfer.load_mapping.cache_clear()
    try:
        assert_each_param_matters(base, target, {
            "n_grid": [1, 2], "repetitions": 3, "seed": 1, "source_per_class": 2,
            "svm": {**base.params["svm"], "C": 0.01}, "mapping": "alt",
            "calibration": {**base.params["calibration"], "n": 2}, **RULE_CHANGES})
    finally:
        transfer.load_mapping.cache_clear()


def breakhis_input() -> TaskInput:
    rng = np.random.default_rng(3)
    rows = [(p, m, i) for p in range(8) for m in (40, 100, 200, 400) for i in range(3)]
    patient = np.array([f"P{p}" for p, _, _ in rows])
    label = np.where(np.array([p for p, _, _ in rows]) % 2 == 0, "benign", "malignant")
    fine = np.where(np.array([p for p, _, _ in rows]) % 4 < 2, label + "-a", label + "-b")
    features = rng.normal(0, 1, (len(rows), 5)) + (label == "malignant")[:, None] * 0.8
    features *= np.logspace(0, 3, 5)
    parts = np.where(np.isin([p for p, _, _ in rows], [0, 1, 4, 5]), "p0", "p1")
    return _input(label, features, parts, TWO_FOLDS, "synth-breakhis", patient=patient,
                  magnification=[m for _, m, _ in rows], fine_label=fine)


@pytest.mark.parametrize("name", ["breakhis-binary", "breakhis-subtype", "breakhis-crossmag", "breakhis-limited"])
def test_breakhis_params_each_change_the_fits(name):
    base = TASKS.get(name)
    changes = {"solver": "sklearn", "C": 1e-5, "max_iter": 1, "standardise": True, "calibration_slice": 0.9,
               "calibration_seed": 3}
    if "fractions" in base.params:
        changes["fractions"] = [20, 50]
    assert_each_param_matters(base, breakhis_input(), changes)


def aml_input() -> TaskInput:
    rng = np.random.default_rng(4)
    patients = [(f"P{i:02d}", "control" if i % 2 else "NPM1") for i in range(20)]
    rows = [(p, label) for p, label in patients for _ in range(4)]
    label = np.array([r[1] for r in rows])
    features = rng.normal(0, 1, (len(rows), 4)) + (label == "NPM1")[:, None] * 0.7
    fold = {p: f"f{i % 5}" for i, (p, _) in enumerate(patients)}
    parts = [fold[r[0]] for r in rows]
    rotations = [{"train": [f"f{(i + 2) % 5}", f"f{(i + 3) % 5}", f"f{(i + 4) % 5}"], "val": [f"f{(i + 1) % 5}"],
                  "test": [f"f{i}"]} for i in range(2)]
    data = _input(label, features, parts, rotations, "synth-aml", patient=[r[0] for r in rows], bag_label=label)
    blasts = {p: (5.0 if i % 4 == 0 else 40.0) for i, (p, _) in enumerate(patients)}  # some AML, some controls low
    data.patients = pd.DataFrame({c: [blasts[p] / 3 for p, _ in patients] for c in BLAST_COLUMNS},
                                 index=[p for p, _ in patients])
    return data


def test_aml_mil_params_each_change_the_training():
    base = TASKS.get("aml-mil").with_params(max_epochs=8, patience=1, lr=0.05, seeds=1, attention_hidden=8, scorer_hidden=8,
                                            abmil_hidden=8, top_k=3)
    data = aml_input()
    changes = {"heads": ["amil"], "attention_hidden": 4, "scorer_hidden": 4, "abmil_hidden": 4, "abmil_dropout": 0.0,
               "lr": 0.001, "momentum": 0.5, "nesterov": False, "max_epochs": 3, "patience": 6, "bags_per_step": 2,
               "seeds": 2, "top_k": 2, "blast_filter": 20, "keep_labels": []}
    keep = changes.pop("keep_labels")
    reference = outcome(base, data)
    for key, value in changes.items():
        assert outcome(base.with_params(**{key: value}), data) != reference, f"aml-mil: {key} changed nothing"
    # keep_labels acts through the blast filter: controls below 20% are kept only when listed
    filtered = base.with_params(blast_filter=20)
    assert outcome(filtered.with_params(keep_labels=keep), data) != outcome(filtered, data)
    assert set(changes) | {"keep_labels"} == set(base.params)


@pytest.mark.parametrize("name, overrides, message", [
    ("cell-probe", {"penalty": "l1"}, "has no parameter 'penalty'; its parameters are: solver, C, max_iter, standardise"),
    ("cell-probe", {"C": -1}, "C must be a positive number"),
    ("cell-probe", {"solver": "liblinear"}, "solver must be one of torch, sklearn, got 'liblinear'"),
    ("cell-probe", {"max_iter": 0}, "max_iter must be a positive integer"),
    ("cell-knn", {"metric": "cosine"}, "has no parameter 'metric'"),
    ("cell-knn", {"ks": [1, 5]}, "ks must include 20"),
    ("label-efficiency", {"svm": {"kernel": "rbf", "gama": 1, "probability": True}}, "svm has no setting 'gama'"),
    ("label-efficiency", {"svm": {"probability": False}}, "svm needs probability: true"),
    ("label-efficiency", {"classifiers": ["lr"]}, "classifiers must include 'svm'"),
    ("label-efficiency", {"pipeline": "PCA only"}, "has no parameter 'pipeline'"),
    ("bm-to-blood", {"classifiers": ["lr"]}, "has no parameter 'classifiers'"),
    ("bm-to-blood", {"mapping": "nope"}, "mapping 'nope' is not a file"),
    ("aml-mil", {"heads": ["abmil"]}, "heads must start with the main head 'amil', got ['abmil']"),
    ("aml-mil", {"optimizer": "Adam"}, "has no parameter 'optimizer'"),
    ("aml-mil", {"momentum": 0.0}, "nesterov needs a momentum above 0"),
    ("aml-mil", {"blast_filter": 120}, "blast_filter must be null or a percentage"),
    ("breakhis-limited", {"fractions": [5, 10]}, "fractions must include 20 (the main metric's), got [5, 10]"),
    ("breakhis-limited", {"fractions": [20, 120]}, "fractions must be percentages in (0, 100], got [20, 120]"),
    ("breakhis-binary", {"magnifications": [40]}, "has no parameter 'magnifications'"),
    ("breakhis-crossmag", {"calibration_slice": 1.5}, "calibration_slice must be a fraction between 0 and 1"),
    ("bm-to-blood", {"calibration": {"repetition": 100, "n": 50, "classifiers": ["svm"], "slice": 0.2, "slice_seed": 0}},
     "calibration.repetition must be one of the first 10 repetitions (every n has them: 0 to 9), got 100"),
    ("label-efficiency", {"precision": 0}, "precision must be a 95% CI half-width in (0, 1)"),
    ("label-efficiency", {"engine": "gpu"}, "engine must be one of fast, reference"),
    ("bm-to-blood", {"min_repetitions": 0}, "min_repetitions must be a positive integer"),
    ("bm-to-blood", {"calibration": {"repetition": 0, "n": 50, "classifiers": ["lr"], "slice": 0.2, "slice_seed": 0}},
     "calibration.classifiers must be a non-empty list of svm"),
    ("label-efficiency", {"calibration": {"repetition": 0, "n": 50}}, "calibration must be a mapping with keys"),
])
def test_unusable_overrides_are_rejected_with_the_reason(name, overrides, message):
    with pytest.raises(HemabenchError, match=re.escape(message)):
        TASKS.get(name).with_params(**overrides)


def test_a_suite_with_an_unknown_task_param_fails_on_load(tmp_path, monkeypatch):
    from hemabench.pipeline import suites

    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "x.yaml").write_text("name: x\ntasks: [cell-probe]\ndatasets: [synth-bm]\n"
                                                "task_params:\n  cell-probe: {penalty: l1}\n")
    monkeypatch.setattr(suites, "benchmarks_dir", lambda: tmp_path)
    with pytest.raises(HemabenchError, match=r"x\.yaml: task 'cell-probe' has no parameter 'penalty'; its "
                                             r"parameters are: solver, C, max_iter, standardise"):
        suites.load_suite("x")


def github_anchor(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation other than - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("name", TASKS.names())
def test_protocol_pointer_resolves_to_a_doc_heading(name):
    pointer = TASKS.get(name).protocol
    path, _, anchor = pointer.partition("#")
    assert path.startswith("docs/") and anchor, f"{name}: protocol {pointer!r} is not docs/<file>.md#<heading>"
    doc = ROOT / path
    assert doc.is_file(), f"{name}: {path} does not exist"
    anchors = {github_anchor(line.lstrip("#")) for line in doc.read_text().splitlines() if line.startswith("#")}
    assert anchor in anchors, f"{name}: no heading #{anchor} in {path}"


def protocol_section(pointer: str) -> str:
    """The text under a ``docs/<file>.md#<heading>`` heading, up to the next heading of its level or above."""
    path, _, anchor = pointer.partition("#")
    lines = (ROOT / path).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and github_anchor(line.lstrip("#")) == anchor)
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level), len(lines))
    return "\n".join(lines[start + 1:end])


@pytest.mark.parametrize("name", TASKS.names())
def test_protocol_section_states_the_task_version(name):
    """A version bump without its protocol text leaves readers on the old protocol (label-efficiency v4 and
    bm-to-blood v5 once said "version 3" and "version 4"): the first version a section names is the task's."""
    task = TASKS.get(name)
    named = re.findall(r"[Vv]ersion (\d+)", protocol_section(task.protocol))
    assert named and int(named[0]) == task.version, \
        f"{name} is version {task.version}; {task.protocol} names {named[:1] or 'no version'} first"


@pytest.mark.parametrize("rule, good, bad, message", [
    (params.positive_int(), 3, True, "x must be a positive integer, got True"),
    (params.integer(0), 0, -1, "x must be a non-negative integer, got -1"),
    (params.fraction(), 0.2, 1, "x must be a fraction between 0 and 1, got 1"),
    (params.int_list(increasing=True), [1, 2], [2, 1], "x must be a non-empty, increasing list of positive integers, "
                                                       "got [2, 1]"),
    (params.int_list(1, 5), [5], [6], "x must be a non-empty list of integers from 1 to 5, got [6]"),
    (params.one_of("a", "b"), "a", "c", "x must be one of a, b, got 'c'"),
    (params.choice_list(("a", "b")), ["b"], [], "x must be a non-empty list of a, b, got []"),
    (params.optional(params.number(0, 100, high_open=False)), None, 101, "x must be null or a number in [0, 100], got 101"),
    (params.positive_number("M*K/100"), "M*K/100", "M*K", "x must be a positive number or 'M*K/100', got 'M*K'"),
    (params.boolean(), False, 0, "x must be true or false, got 0"),
    (params.fields({"n": params.positive_int()}), {"n": 1}, {"n": 0}, "x.n must be a positive integer, got 0"),
    (params.fields({"n": params.positive_int()}), {"n": 1}, {"m": 1}, "x must be a mapping with keys n, got {'m': 1}"),
])
def test_each_rule_of_the_vocabulary_names_the_parameter_and_the_problem(rule, good, bad, message):
    assert rule.check("x", good) is None
    assert rule.check("x", bad) == message


@pytest.mark.parametrize("name", TASKS.names())
def test_every_parameter_has_a_rule_and_the_defaults_pass(name):
    task = TASKS.get(name)
    assert set(task.param_rules) == set(task.params) and task.check_params() is None
    assert params.params_problem(task.param_rules, {**task.params, "extra": 1}).startswith("extra has no rule")


def test_the_leaderboard_groups_a_task_under_its_own_family():
    from hemabench.leaderboard.reported import task_family

    assert task_family("blood-shift") == TASKS.get("blood-shift").family == "acquisition shift"
    assert task_family("robustness") == "robustness"  # no family declared: its name
    assert task_family("a-paper-only-task") == "a-paper-only-task"
