"""Paper values are paired with runs only on boards whose protocol matches (issue 27), and the
"differs beyond both intervals" flag needs the run's CI and the paper's ± sd to exclude each other.

Every run here is FABRICATED (made-up predictions scored by the real scorer, no data, no weights),
built once per case so that exactly one thing departs from the published protocol.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_leaderboard import make_result, noisy

from hemabench.leaderboard.collect import Board, Entry, board_key
from hemabench.leaderboard.reported import Pair, comparable, pairs
from hemabench.published.protocol import Protocol
from hemabench.published.values import Reported, load_reported
from hemabench.results import Result
from hemabench.tasks import TASKS

ACEVEDO = ["BAS", "EBO", "EOS", "LYT", "MON", "MYC", "NGS", "PLA"]
ACEVEDO_CV5 = "71a3f5d294b203a766ec80132f7f1e06906395cee73e01b0993ea40e630086bd"  # benchmarks/fingerprints.yaml
V1 = [{"hub": "timm/resnet50.tv_in1k", "revision": "99108565f2fd2a9d8a1b640156f564d7f4ad7188"}]
V2 = [{"hub": "timm/resnet50.tv2_in1k"}]


@pytest.fixture(scope="module")
def values():
    return load_reported()


def knn_run(encoder="dinobloom-s", labels=ACEVEDO, params=None, split="cv5", fingerprint=ACEVEDO_CV5,
            version=None, weights=None) -> Result:
    """A fabricated cell-knn / acevedo run under DinoBloom's protocol, with the given departures."""
    rng = np.random.default_rng(3)
    true = [labels[i % len(labels)] for i in range(len(labels) * 40)]
    predictions = {v: {"id": [f"{t}/img{i}.jpg" for i, t in enumerate(true)], "fold": [f"fold{i % 5}" for i in range(len(true))],
                       "true": true, "pred": noisy(true, labels, 0.8, rng)} for v in ("k1", "k20")}
    task = TASKS.get("cell-knn")
    data = make_result("cell-knn", "acevedo", encoder, labels, predictions, "k20/balanced_accuracy",
                       params=dict(task.params) if params is None else params,
                       version=task.version if version is None else version, fingerprint=fingerprint)
    data["split"]["name"] = split
    if weights is not None:
        data["encoder"]["spec"]["weights"] = weights
    return Result.from_dict(data)


def board_of(*results: Result) -> Board:
    board = Board(board_key(results[0]))
    for r in results:
        board.entries[r.encoder] = Entry(r, None, "local run")
    return board


def test_a_run_under_the_papers_protocol_is_paired(values):
    found = pairs(board_of(knn_run()), values)
    assert {p.metric for p in found} == {"k1/weighted_f1", "k1/balanced_accuracy", "k20/weighted_f1",
                                         "k20/balanced_accuracy"}
    assert all(p.reported.source == "dinobloom, Table 2" for p in found)
    assert found[0].remaining == ["split (the paper's own, not reproducible here)"]


@pytest.mark.parametrize("run, reason", [
    (dict(params={"ks": [1, 5, 20]}), "params differ (ks)"),
    (dict(params={"ks": [1, 20], "metric": "cosine"}), "params differ (metric not in the protocol)"),
    (dict(split="holdout-70-30"), "split differs (holdout-70-30 instead of cv5)"),
    (dict(fingerprint="f" * 64), "split differs (fingerprint of cv5 is not the registered one)"),
    (dict(labels=ACEVEDO[:-1]), "other class set (8 classes in the paper, 7 scored here)"),
])
def test_a_run_departing_from_the_protocol_is_never_paired(values, run, reason):
    board = board_of(knn_run(**run))
    assert pairs(board, values) == []
    shown, reasons = comparable(board, values)
    assert shown == [] and reason in reasons["dinobloom, Table 2"]  # and no paper row in the run's columns


def test_dinobloom_resnet50_pairs_only_with_the_papers_v2_weights(values):
    v1 = knn_run("resnet50", weights=V1)
    assert pairs(board_of(v1), values) == []
    paper = next(r for r in values if r.encoder == "resnet50" and r.metric == "k20/balanced_accuracy")
    assert paper.protocol.mismatches(TASKS.get("cell-knn"), "resnet50", v1) == [
        "encoder weights differ (the paper used timm/resnet50.tv2_in1k)"]
    assert len(pairs(board_of(knn_run("resnet50", weights=V2)), values)) == 4
    assert len(pairs(board_of(knn_run("resnet50")), values)) == 0  # no spec recorded: weights unknown


def test_the_class_set_keeps_table_4_out_of_the_bm_to_blood_columns(values):
    """hemabench's bm-to-blood on Matek blood scores 11 classes: Table 3 (11) is comparable, Table 4 (15) not."""
    eleven = ["BAS", "EBO", "EOS", "KSC", "LYT", "MMZ", "MON", "MYB", "NGB", "NGS", "PMO"]
    rng = np.random.default_rng(5)
    true = [eleven[i % 11] for i in range(220)]
    predictions = {v: {"id": [f"c{i}" for i in range(220)], "fold": ["test"] * 220, "true": true,
                       "pred": noisy(true, eleven, 0.7, rng)} for v in ("direct", "adapt/n=50")}
    task = TASKS.get("bm-to-blood")
    data = make_result("bm-to-blood", "matek-blood", "dinobloom-s", eleven, predictions, "direct/balanced_accuracy",
                       params=dict(task.params), version=task.version)
    data["split"]["name"] = "holdout-70-30"
    data["source_split"] = {"dataset": "matek-bm", "name": "holdout-70-30", "version": 1, "fingerprint": "c" * 64}
    shown, reasons = comparable(board_of(Result.from_dict(data)), values)
    assert {r.table for r in shown} == {"Table 3"}
    assert reasons["wenderoth, Table 4"] == ["other class set (15 classes in the paper, 11 scored here)"]
    data["source_split"]["name"] = "holdout-80-20"  # another bone-marrow split: nothing is comparable
    shown, reasons = comparable(board_of(Result.from_dict(data)), values)
    assert shown == [] and reasons["wenderoth, Table 3"] == ["source split differs (holdout-80-20 instead of holdout-70-30)"]


def test_version_range_and_contained_parameters():
    protocol = Protocol(versions=(2, 3), params={}, params_contain={"fractions": [25]}, split="patient-cv5")
    task = TASKS.get("breakhis-limited")

    def run(version, fractions):
        return Result.from_dict({"task": "breakhis-limited", "task_version": version, "dataset": "breakhis",
                                 "encoder": {"name": "x"}, "main_metric": "m/a", "metrics": {"m/a": {}},
                                 "task_metadata": {"params": {"fractions": fractions}},
                                 "split": {"name": "patient-cv5", "version": 1}})
    assert protocol.board_mismatches(task, run(3, [20, 25])) == []
    assert protocol.board_mismatches(task, run(4, [20, 25])) == ["task version 4 outside 2-3"]
    assert protocol.board_mismatches(task, run(3, [20])) == ["params differ (fractions must include [25])"]


def _pair(mean, ci, value, sd) -> Pair:
    reported = Reported("p", "citation", "Table 1", "e", "", "cell-knn", "acevedo", "k1/accuracy", value, sd, "note")
    return Pair("e", "k1/accuracy", {"mean": mean, "ci95": list(ci)}, reported)


@pytest.mark.parametrize("mean, ci, value, sd, flagged", [
    (0.80, (0.78, 0.82), 0.70, 0.05, True),    # CI excludes 0.70, 0.70 ± 0.05 excludes 0.80
    (0.80, (0.78, 0.82), 0.70, 0.12, False),   # CI excludes 0.70, but 0.80 is within 0.70 ± 0.12
    (0.80, (0.65, 0.95), 0.70, 0.01, False),   # the run's CI holds 0.70
    (0.80, (0.78, 0.82), 0.70, None, True),    # no sd printed: the run's CI decides
    (0.80, (0.78, 0.82), 0.79, None, False),
])
def test_the_flag_needs_both_intervals(mean, ci, value, sd, flagged):
    pair = _pair(mean, ci, value, sd)
    assert pair.flagged is flagged
    assert pair.outside_run is (not ci[0] <= value <= ci[1])
    assert pair.cell()["data"]["flagged"] == str(flagged).lower()


def test_a_demo_settings_board_shows_no_paper_rows_in_its_columns(tmp_path, values):
    """Built site, one fabricated run whose parameters differ from DinoBloom's protocol: no pair, no
    paper row in its ranking, "–" in its index column, and the reason in the published table."""
    from test_leaderboard import parse, write
    from test_leaderboard_context import page, rows_of, text

    from hemabench.leaderboard import build_site

    run = knn_run(params={"ks": [1, 5, 20]})
    write(tmp_path / "run", run.data)
    (tmp_path / "none").mkdir()
    build_site(tmp_path / "site", tmp_path / "none", [tmp_path / "run"], figures=False)
    _, board = page(tmp_path / "site", "tasks/cell-knn--acevedo--[0-9a-f]*.html")
    assert [r.attrs.get("data-tier") for r in rows_of(board.find("table", id="ranking"))] == ["run"]
    assert board.find("table", id="pairs") is None
    published = rows_of(board.find("table", id="published"))
    assert len(published) == 12
    assert all(text(list(r.find_all("td"))[1]) == "not comparable here: params differ (ks)" for r in published)
    index = parse((tmp_path / "site" / "index.html").read_text())
    table = index.find("table", id="leaderboard")
    heads = [text(th) for th in list(table.find("thead").find_all("tr"))[-1].find_all("th")]
    column = next(i for i, h in enumerate(heads) if h.startswith("cell-knn / acevedo") and "papers only" not in h)
    paper_row = table.find("tr", id="paper-dinobloom-s")  # left out when it has no value in any run column
    assert paper_row is None or text(list(paper_row.find_all("td"))[column - 1]) == "–"
    # the values no run board matches keep a papers-only board of their own, in the collapsed papers-only table
    table = index.find("table", id="papers-only")
    heads = [text(th) for th in list(table.find("thead").find_all("tr"))[-1].find_all("th")]
    paper_row = table.find("tr", id="paper-dinobloom-s")
    papers_only = next(i for i, h in enumerate(heads) if h.startswith("cell-knn / acevedo") and "papers only" in h)
    assert text(list(paper_row.find_all("td"))[papers_only - 1]).startswith("84.5 paper")
