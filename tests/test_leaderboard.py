"""The static leaderboard: built from the committed reference results plus small fabricated
AML-MIL and BreakHis results, checked for numbers, drill-down links, ranking, escaping and
clinical costs; one slow test opens it in headless Chromium and screenshots it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from hemabench.leaderboard.clinical import load_cost_models
from hemabench.leaderboard.collect import anchor
from hemabench.leaderboard.ranking import tie_ranks
from hemabench.leaderboard.tables import pct
from hemabench.results import Result, score_predictions

REFERENCES = Path(__file__).resolve().parents[1] / "submissions"
AML = ["CBFB_MYH11", "NPM1", "PML_RARA", "RUNX1_RUNX1T1", "control"]


# -- fixture results ---------------------------------------------------------------------------
def make_result(task, dataset, encoder, labels, predictions, main_metric, extra=None, version=1, params=None,
                fingerprint="a" * 64) -> dict:
    """A result file as the runner writes it, scored by the real scorer from ``predictions``."""
    variant = main_metric.rsplit("/", 1)[0]
    scores = score_predictions(predictions, labels, variant, n_boot=50)
    return {"schema_version": "1.0", "task": task, "task_version": version, "dataset": dataset,
            "task_metadata": {"description": f"fabricated {task}", "params": params or {}, "detail_variant": variant},
            "dataset_info": {"synthetic": True}, "split": {"dataset": dataset, "name": "patient-cv5", "version": 1,
                                                           "fingerprint": fingerprint, "folds": scores["folds"]},
            "encoder": {"name": encoder, "weights_sha256": "b" * 64, "spec": {"name": encoder, "license": "MIT"}},
            "main_metric": main_metric, "labels": labels, "metrics": scores["metrics"], "per_class": scores["per_class"],
            "confusion_matrix": scores["confusion_matrix"], "predictions": predictions, "extra": extra or {},
            "provenance": {"hemabench_version": "0.1.0", "seeds": {"bootstrap": 0}}}


def noisy(true, labels, accuracy, rng) -> list[str]:
    return [t if rng.random() < accuracy else str(rng.choice([x for x in labels if x != t])) for t in true]


def mil_result(encoder: str, accuracy: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    patients = [f"P{i:02d}" for i in range(20)]
    true = [AML[i % 5] for i in range(20)]
    predictions = {}
    for head in ("amil", "abmil"):
        pred = noisy(true, AML, accuracy, rng)
        proba = [[0.6 if lab == p else 0.1 for lab in AML] for p in pred]
        predictions[head] = {"id": patients, "fold": [f"fold{i % 5}/s0" for i in range(20)], "true": true,
                             "pred": pred, "proba": proba}
    attention = {p: {"pred": predictions["amil"]["pred"][i], "true": true[i], "run": f"fold{i % 5}/s0",
                     "cells": [{"path": f"{true[i]}/{p}/image_{k}.png", "score": round(0.3 - 0.05 * k, 6)}
                               for k in range(3)]} for i, p in enumerate(patients)}
    return make_result("aml-mil", "synth-aml", encoder, AML, predictions, "amil/weighted_f1",
                       extra={"attention": attention, "attention_runs": "seed 0"})


def crossmag_result(encoder: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels, mags = ["benign", "malignant"], [40, 100, 200, 400]
    true = [labels[i % 2] for i in range(40)]
    predictions = {v: {"id": [f"img{i}.png" for i in range(40)], "group": [f"pat{i % 8}" for i in range(40)],
                       "fold": [f"fold{i % 4}" for i in range(40)], "true": true, "pred": noisy(true, labels, acc, rng)}
                   for v, acc in (("diag", 0.9), ("offdiag", 0.7))}
    matrix = [[round(0.9 if a == b else 0.6 + 0.01 * a / 40, 4) for b in mags] for a in mags]
    extra = {"crossmag": {"magnifications": mags, "accuracy": matrix, "patient_accuracy": matrix,
                          "summary": {"accuracy": {"diagonal": 0.9, "off_diagonal": 0.65, "gap": 0.25}}}}
    return make_result("breakhis-crossmag", "synth-breakhis", encoder, labels, predictions,
                       "offdiag/patient_accuracy", extra=extra)


def write(root: Path, result: dict, rel: str | None = None) -> Path:
    path = root / (rel or f"{result['encoder']['name']}/{result['task']}/{result['dataset']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return path


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory):
    """References (small subset) as a submissions folder, fabricated results as a local run."""
    base = tmp_path_factory.mktemp("lb")
    subs = base / "submissions"
    for encoder in ("handcrafted", "resnet18-random"):
        (subs / encoder).mkdir(parents=True)
        shutil.copy2(REFERENCES / encoder / "encoder.yaml", subs / encoder)
        for rel in ("cell-probe/synth-bm.json", "label-efficiency/synth-bm.json", "bm-to-blood/synth-blood.json"):
            target = subs / encoder / "results" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REFERENCES / encoder / "results" / rel, target)
    run = base / "results"
    for i, encoder in enumerate(("handcrafted", "resnet18-random")):
        write(run, mil_result(encoder, 0.8 - 0.4 * i, i))
        write(run, crossmag_result(encoder, i))
    from hemabench.leaderboard import build_site

    report = build_site(base / "site", subs, [run], figures=False)
    return base, report


# -- a minimal DOM, for pages read from disk or dumped by Chromium --------------------------------
class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    def all_text(self) -> str:
        return (self.text + "".join(c.all_text() for c in self.children)).strip()

    def find_all(self, tag=None, **attrs):
        for child in self.children:
            if (tag is None or child.tag == tag) and all(child.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()):
                yield child
            yield from child.find_all(tag, **attrs)

    def find(self, tag=None, **attrs):
        return next(self.find_all(tag, **attrs), None)


class TreeBuilder(HTMLParser):
    VOID = {"meta", "img", "br", "link", "input", "hr"}

    def __init__(self):
        super().__init__()
        self.root = self.current = Node("document", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text += data


def parse(html: str) -> Node:
    (builder := TreeBuilder()).feed(html)
    return builder.root


def cell_text(node: Node) -> str:
    """The main text of a score cell, without its interval line and rank badge."""
    return (node.find("a").all_text() if node.find("a") else node.text).strip()


# -- checks shared by the fast test and the Chromium test -------------------------------------------
def check_index_numbers(index: Node, results: dict[tuple, dict]) -> list[tuple[str, str]]:
    """Every score cell equals its JSON (text rounded, data-mean exact); returns the (encoder, href) cells."""
    links = []
    table = index.find("table", id="leaderboard")
    for row in table.find("tbody").find_all("tr"):
        encoder = row.find("th").all_text()
        for td in row.find_all("td"):
            if "data-mean" not in td.attrs:
                continue
            href = td.find("a").attrs["href"]
            page = href.split("#")[0]
            task, dataset = Path(page).stem.split("--")[:2]
            score = results[(encoder, task, dataset)]
            main = score["metrics"][score["main_metric"]]
            assert td.attrs["data-mean"] == repr(main["mean"]) and td.attrs["data-std"] == repr(main["std"])
            single = len(main["values"]) == 1 and main["std"] == 0  # one split: no "± 0.0"
            assert cell_text(td) == pct(main["mean"]) + ("" if single else f" ± {pct(main['std'])}")
            links.append((encoder, href))
    return links


def check_task_page(page: Node, result: dict, encoder: str) -> None:
    """Ranking row, per-class sensitivities and the confusion-matrix rows they link to equal the JSON."""
    assert page.find("tr", id=f"enc-{anchor(encoder)}") is not None
    per_class = page.find("table", id="per-class")
    column = [th.all_text().rstrip("↕").strip() for th in per_class.find("thead").find_all("th")].index(encoder)
    for label, stats in result["per_class"].items():
        row = per_class.find("tr", id=f"class-{anchor(label)}")
        td = list(row.find_all("td"))[column - 1]
        assert td.attrs["data-value"] == repr(stats["sensitivity"])
        target = td.find("a").attrs["href"].lstrip("#")
        cm_row = page.find("tr", id=target)
        counts = [int(td.all_text()) for td in cm_row.find_all("td")][:-1]  # last column: row total
        i = result["confusion_matrix"]["labels"].index(label)
        assert counts == result["confusion_matrix"]["counts"][i]


def load_results(*folders: Path) -> dict[tuple, dict]:
    results = (json.loads(p.read_text()) for folder in folders for p in folder.rglob("*.json"))
    return {(r["encoder"]["name"], r["task"], r["dataset"]): r for r in results}


# -- tests --------------------------------------------------------------------------------------
def test_site_numbers_and_drilldown_from_table_to_confusion_row(fixture_site):
    base, report = fixture_site
    site, results = base / "site", load_results(base / "submissions", base / "results")
    assert report.results == len(results) == 10 and not report.warnings
    links = check_index_numbers(parse((site / "index.html").read_text()), results)
    assert len(links) == 10
    for encoder, href in links:
        page = parse((site / href.split("#")[0]).read_text())
        task, dataset = Path(href.split("#")[0]).stem.split("--")[:2]
        check_task_page(page, results[(encoder, task, dataset)], encoder)
    encoder_page = (site / "encoders" / "handcrafted.html").read_text()
    assert results[("handcrafted", "cell-probe", "synth-bm")]["encoder"]["weights_sha256"] in encoder_page
    assert "<dt>not trained on test splits</dt><dd>yes</dd>" in encoder_page and "Apache-2.0" in encoder_page


def test_cli_build(fixture_site, cli, tmp_path):
    base, _ = fixture_site
    code, out, _ = cli("leaderboard", "build", "--submissions", base / "submissions", "--results", base / "results",
                       "--out", tmp_path / "site", "--no-figures")
    assert code == 0 and "10 results on 5 boards (+ 517 published numbers)" in out and (tmp_path / "site" / "index.html").is_file()
    code, _, err = cli("leaderboard", "build", "--submissions", tmp_path / "none", "--results", tmp_path / "none",
                       "--out", tmp_path / "empty")
    assert code == 2 and "nothing to build" in err and not (tmp_path / "empty").exists()
    (tmp_path / "none").mkdir()
    code, _, err = cli("leaderboard", "build", "--submissions", tmp_path / "none", "--out", tmp_path / "empty")
    assert code == 2 and "no result files found" in err and not (tmp_path / "empty").exists()


def test_special_renderings(fixture_site):
    base, _ = fixture_site
    pages = {p.stem.split("--")[0]: p.read_text() for p in (base / "site" / "tasks").glob("*.html")
             if "--reported-" not in p.stem}  # boards that only papers report (tests/test_leaderboard_context.py)
    assert 'id="s-curves"' in pages["label-efficiency"] and "svm n=50" in pages["label-efficiency"]
    assert 'id="super-MYC"' in pages["bm-to-blood"] and "superclass: PMO + MYB" in pages["bm-to-blood"]
    assert "adapt n=25" in pages["bm-to-blood"]
    mil = parse(pages["aml-mil"])
    gallery = mil.find("details", id="attention-handcrafted")
    shown = {c.attrs["title"]: c.all_text() for c in gallery.find_all("span", class_="cellpath")}
    assert shown["control/P04/image_0.png"] == "image_0.png 0.3"  # no images here: file name and weight, path on hover
    assert "images not shown" in gallery.find("p", class_="note images-note").all_text()
    assert "abmil/weighted_f1" in pages["aml-mil"] and "roc_auc_macro" in pages["aml-mil"]
    cross = parse(pages["breakhis-crossmag"]).find("table", id="crossmag-handcrafted-patient_accuracy")
    cells = [td.attrs["data-value"] for td in cross.find_all("td")]
    assert len(cells) == 16 and cells[0] == repr(0.9)
    for name, html in pages.items():  # provenance on every page
        assert "split fingerprints" in html and "task versions" in html, name


def test_clinical_costs_and_lineage_accuracy_from_confusions():
    model = next(m for m in load_cost_models() if m.name == "cell-types")
    labels = ["BLA", "LYT", "NGB", "NGS"]
    cost = model.matrix(labels)
    assert cost[0, 1] > cost[1, 0] > cost[2, 3] > 0 and not np.diag(cost).any()  # blast->lymph worst, band->seg mild
    cm = np.array([[8, 2, 0, 0], [0, 10, 0, 0], [0, 0, 6, 4], [0, 1, 0, 9]])
    scores = model.scores([cm], labels)
    assert scores["mean_cost"]["mean"] == pytest.approx((2 * cost[0, 1] + 4 * cost[2, 3] + cost[3, 1]) / cm.sum())
    assert scores["group_accuracy"]["mean"] == pytest.approx((40 - 2 - 1) / 40)  # NGB->NGS stays granulocytic
    from hemabench.datasets import DATASETS

    for name in ("matek-bm", "matek-blood", "acevedo", "raabin", "synth-bm", "synth-blood"):
        assert model.covers(DATASETS.get(name).classes), name


def test_paired_bootstrap_ties_close_encoders_and_separates_distant_ones():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    true = list(rng.choice(labels, 300))
    base = {"id": [f"s{i}" for i in range(300)], "fold": ["f0"] * 300, "true": true}

    def result(accuracy, seed):
        pred = noisy(true, labels, accuracy, np.random.default_rng(seed))
        return make_result("cell-probe", "synth-bm", f"e{seed}", labels, {"probe": {**base, "pred": pred}},
                           "probe/balanced_accuracy")

    ranks, comparisons = tie_ranks({"good": Result.from_dict(result(0.9, 1)), "close": Result.from_dict(result(0.89, 2)),
                                    "poor": Result.from_dict(result(0.5, 3))})
    assert ranks == {"good": 1, "close": 1, "poor": 3}
    assert all(c.unit == "samples" and c.n == 300 for c in comparisons)
    confusions = [[[5, 1], [1, 5]], [[6, 0], [2, 4]], [[5, 1], [0, 6]]]
    reps = {"fold": ["rep0", "rep1", "rep2"]}
    low = make_result("le", "d", "x", ["a", "b"], {"v": {**reps, "confusions": [[[3, 3], [3, 3]]] * 3}}, "v/accuracy")
    high = make_result("le", "d", "y", ["a", "b"], {"v": {**reps, "confusions": confusions}}, "v/accuracy")
    ranks, (comparison,) = tie_ranks({"x": Result.from_dict(low), "y": Result.from_dict(high)})
    assert ranks == {"x": 2, "y": 1} and comparison.unit == "repetitions"


def test_incompatible_versions_and_params_are_never_ranked_together(tmp_path):
    from hemabench.leaderboard import build_site

    ref = json.loads((REFERENCES / "handcrafted/results/cell-probe/synth-bm.json").read_text())
    for name, changes in {"next": {"task_version": ref["task_version"] + 1}, "light": {"task_metadata": {**ref["task_metadata"],
                                                                                 "params": {"repetitions": 3}}}}.items():
        write(tmp_path / "run", {**ref, **changes, "encoder": {**ref["encoder"], "name": name}})
    write(tmp_path / "run", ref)
    report = build_site(tmp_path / "site", None, [tmp_path / "run"], figures=False)
    assert report.boards == 3
    index = parse((tmp_path / "site" / "index.html").read_text())
    badges = [s.all_text() for s in index.find("table", id="leaderboard").find_all("span", class_="rank rank-1")]
    assert badges == ["1", "1", "1"]  # each alone on its own board


def test_submission_strings_are_escaped_and_never_reach_file_names(tmp_path):
    from hemabench.leaderboard import build_site

    evil = "<script>alert(1)</script>"
    label = '<img src=x onerror="alert(2)">'
    true = ["ok", label] * 10
    result = make_result("../../x", "../d", evil, sorted(["ok", label]),
                         {"p": {"id": [f"../{i}" for i in range(20)], "fold": ["f"] * 20, "true": true, "pred": true}},
                         "p/accuracy")
    result["extra"] = {"attention": {evil: {"pred": label, "cells": [{"path": "../../../etc/passwd", "score": 1}]}}}
    write(tmp_path / "run", result, "evil/t/d.json")
    report = build_site(tmp_path / "site", None, [tmp_path / "run"], data_root=str(tmp_path), figures=False)
    assert report.results == 1 and report.thumbnails == 0
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "site" in p.parts]
    assert all(p.resolve().is_relative_to((tmp_path / "site").resolve()) for p in files)
    for path in files:
        html = path.read_text()
        if path.suffix in (".json", ".csv"):  # downloads hold the strings as data, never as markup
            assert path.suffix == ".csv" or json.loads(html)
            continue
        assert evil not in html and label not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or path.name != "index.html"


def test_thumbnails_only_from_inside_the_dataset_root(tmp_path):
    from PIL import Image

    from hemabench.leaderboard.build import BuildReport, Site

    root = tmp_path / "data"
    (root / "control" / "P1").mkdir(parents=True)
    Image.new("RGB", (300, 200), (200, 40, 90)).save(root / "control" / "P1" / "image_0.png")
    (tmp_path / "outside.png").write_bytes((root / "control" / "P1" / "image_0.png").read_bytes())
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    site = Site(tmp_path / "site", str(tmp_path), BuildReport(tmp_path / "site"))
    site._roots["synth-aml"] = root.resolve()
    href = site.thumbnail("synth-aml", "control/P1/image_0.png")
    with Image.open(tmp_path / "site" / href[3:]) as thumb:
        assert max(thumb.size) == 96
    for rel in ("../outside.png", "/etc/hostname", "link.png", "control/../control/P1/image_0.png", "missing.png"):
        assert site.thumbnail("synth-aml", rel) is None, rel
    assert Site(tmp_path / "s2", None, BuildReport(tmp_path)).thumbnail("aml-hehr", "control/P1/image_0.png") is None


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))),
                None)


def ensure_chromium() -> str:
    """Chromium, installed with apt-get when absent (as root, or through passwordless sudo)."""
    found = find_chromium()
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = ""
    for command in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            log = subprocess.run(sudo + command, capture_output=True, text=True, env=env, timeout=900).stderr[-300:]
        except (OSError, subprocess.SubprocessError) as exc:
            log = str(exc)
        if find_chromium():
            return find_chromium()
    pytest.skip(f"Chromium is not installed and `apt-get install -y chromium` failed: {log.strip()}")


@pytest.mark.slow
def test_site_in_headless_chromium(tmp_path):
    """Full build (figures included) opened from disk in Chromium: JS runs, numbers equal the JSON."""
    from hemabench.leaderboard import build_site

    browser = ensure_chromium()
    run = tmp_path / "results"
    for i, encoder in enumerate(("handcrafted", "resnet18-random")):  # fabricate only what the references lack
        for result in (mil_result(encoder, 0.8 - 0.4 * i, i), crossmag_result(encoder, i)):
            if not (REFERENCES / encoder / "results" / result["task"] / f"{result['dataset']}.json").exists():
                write(run, result)
    report = build_site(tmp_path / "site", REFERENCES, [run])
    assert report.figures > 20 and not report.warnings
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'p'}"]

    def dom(page: Path) -> Node:
        out = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-500:]
        return parse(out.stdout)

    index = dom(tmp_path / "site" / "index.html")
    assert len(list(index.find_all("button", class_="sort"))) > 5  # the inline script ran, offline
    results = load_results(REFERENCES, run)
    links = check_index_numbers(index, results)
    assert len(links) == len(results)
    encoder, href = next((e, h) for e, h in links if "cell-probe--synth-bm" in h)
    task_page = tmp_path / "site" / href.split("#")[0]
    check_task_page(dom(task_page), results[(encoder, "cell-probe", "synth-bm")], encoder)
    keep = Path(os.environ.get("HEMABENCH_SCREENSHOTS", tmp_path))
    keep.mkdir(parents=True, exist_ok=True)
    for name, page, size in (("index", tmp_path / "site" / "index.html", "1400,900"), ("task", task_page, "1400,2600")):
        shot = keep / f"leaderboard-{name}.png"
        subprocess.run([browser, *flags, f"--window-size={size}", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
        from PIL import Image

        with Image.open(shot) as image:
            colours = image.convert("RGB").getcolors(1 << 20)
        assert colours is not None and len(colours) > 50  # something was drawn, not a blank page
