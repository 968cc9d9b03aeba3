"""The leaderboard with published context: paper rows, boards only papers report, reproduced-vs-reported
pairs, encoder cost, CSV/JSON downloads, and (slow) the index in headless Chromium at 1366x768.

The site is built from the committed reference submissions plus ONE FABRICATED result: a
made-up dinobloom-s run on cell-knn / acevedo (no real data, no real weights), written here
only so that a run and a published value share encoder, task, dataset and metric. It is
marked ``extra.fabricated`` and lives in a temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_leaderboard import REFERENCES, ensure_chromium, make_result, noisy, parse, write

from hemabench.tasks import TASKS

ACEVEDO = ["BAS", "EBO", "EOS", "LYT", "MON", "MYC", "NGS", "PLA"]
ACEVEDO_CV5 = "71a3f5d294b203a766ec80132f7f1e06906395cee73e01b0993ea40e630086bd"  # benchmarks/fingerprints.yaml
N_REPORTED = 517
COST = {"parameters": 22056576, "embedding_dim": 384, "input_size": 224, "gflops_per_image": 6.1, "flops_note": "",
        "device": "cuda (NVIDIA H200)", "forward_images_per_s": 2400.0, "forward_batch_size": 64,
        "peak_memory_mb": 900.0, "peak_memory_kind": "CUDA", "extraction_images_per_s": 1500.0,
        "extraction_images": 400, "extraction_device": "cuda"}


def fabricated_run() -> dict:
    """FABRICATED for this test: k20 close to the paper's bAcc 84.5, k1 far from its wF1 86.4."""
    rng = np.random.default_rng(7)
    true = [ACEVEDO[i % 8] for i in range(400)]
    predictions = {v: {"id": [f"{t}/img{i}.jpg" for i, t in enumerate(true)], "fold": [f"fold{i % 5}" for i in range(400)],
                       "true": true, "pred": noisy(true, ACEVEDO, acc, rng)} for v, acc in (("k1", 0.5), ("k20", 0.845))}
    result = make_result("cell-knn", "acevedo", "dinobloom-s", ACEVEDO, predictions, "k20/balanced_accuracy",
                         params=dict(TASKS.get("cell-knn").params), version=TASKS.get("cell-knn").version,
                         fingerprint=ACEVEDO_CV5)
    result["split"]["name"] = "cv5"  # the registered split DinoBloom's protocol names: the values pair
    result["extra"] = {"fabricated": "test fixture only: not a real run"}
    result["encoder_cost"] = COST
    return result


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from hemabench.leaderboard import build_site

    base = tmp_path_factory.mktemp("ctx")
    run = fabricated_run()
    write(base / "run", run)
    report = build_site(base / "site", REFERENCES, [base / "run"], figures=False)
    return base / "site", run, report


def page(site_dir: Path, pattern: str) -> tuple[Path, object]:
    found = sorted(site_dir.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0], parse(found[0].read_text())


def text(node) -> str:
    """A cell's text as a browser's textContent, whitespace collapsed."""
    def raw(n) -> str:
        return n.text + "".join(raw(c) for c in n.children)
    return re.sub(r"\s+", " ", raw(node)).strip()


def rows_of(table):
    return list(table.find("tbody").find_all("tr"))


def test_delta_column_and_pairs_for_the_fabricated_run(site):
    site_dir, run, _ = site
    _, board = page(site_dir, "tasks/cell-knn--acevedo--[0-9a-f]*.html")
    ranking = board.find("table", id="ranking")
    heads = [text(th) for th in list(ranking.find("thead").find_all("tr"))[-1].find_all("th")]
    row = ranking.find("tr", id="enc-dinobloom-s")
    delta = list(row.find_all("td"))[heads.index("reproduced − reported") - 1]
    main = run["metrics"]["k20/balanced_accuracy"]
    assert delta.attrs["data-diff"] == repr(main["mean"] - 0.845)
    outside = not main["ci95"][0] <= 0.845 <= main["ci95"][1]
    assert delta.attrs["data-flagged"] == str(outside).lower()
    pairs = board.find("table", id="pairs")
    by_metric = {list(r.find_all("td"))[0].attrs["data-sort"]: r for r in rows_of(pairs)}  # the key; words shown
    assert set(by_metric) == {"k1/weighted_f1", "k1/balanced_accuracy", "k20/weighted_f1", "k20/balanced_accuracy"}
    k1 = run["metrics"]["k1/weighted_f1"]
    assert k1["ci95"][1] < 0.864 and "flagged" in by_metric["k1/weighted_f1"].attrs["class"]  # 50% accurate vs 86.4
    _, encoder = page(site_dir, "encoders/dinobloom-s.html")
    assert len(rows_of(encoder.find("table", id="pairs"))) == 4
    cost = encoder.find("table", id="cost")
    assert "2400.0" in text(cost) and "cuda (NVIDIA H200)" in text(cost)


def test_paper_rows_are_after_runs_unranked_and_outside_tie_groups(site):
    site_dir, _, _ = site
    _, board = page(site_dir, "tasks/cell-knn--acevedo--[0-9a-f]*.html")
    rows = rows_of(board.find("table", id="ranking"))
    tiers = [r.attrs.get("data-tier") for r in rows]
    assert tiers == ["run"] + ["paper"] * 12  # the run, then DinoBloom Table 2's twelve encoders
    for r in rows[1:]:
        assert r.find("span", class_="rank rank-1") is None and text(list(r.find_all("td"))[0]) == "paper"
    comparisons = board.find("table", id="comparisons")
    assert comparisons is None  # one run: nothing to compare; paper rows never enter the bootstrap
    published = board.find("table", id="published")
    assert len(rows_of(published)) == 12 and "dinobloom, Table 2" in text(published)


def test_boards_that_only_papers_report_exist(site):
    site_dir, _, report = site
    # a table with many more metrics than rows is transposed: one row per metric plus the "protocol" row
    for pattern, n_rows in (("cell-knn--matek-bm--reported-*", 12), ("cell-probe--matek-bm--reported-*", 1 + 67),
                            ("cell-probe--acevedo--reported-*", 12), ("aml-mil--aml-hehr--reported-*", 16),
                            ("bm-to-blood--raabin--reported-*", 1 + 12), ("breakhis-limited--breakhis--reported-*", 8),
                            ("breakhis-binary--breakhis--reported-*", 8), ("label-efficiency--matek-bm--reported-*", 1 + 22)):
        _, board = page(site_dir, f"tasks/{pattern}.html")
        assert len(rows_of(board.find("table", id="published"))) == n_rows, pattern
    _, index = page(site_dir, "index.html")
    heads = {text(th) for th in index.find("table", id="leaderboard").find("thead").find_all("th")}
    paper_heads = {text(th) for th in index.find("table", id="papers-only").find("thead").find_all("th")}
    version = TASKS.get("cell-knn").version
    assert f"cell-knn / matek-bm v{version} · papers only · balanced accuracy ↑ (k20)" in paper_heads  # collapsed apart
    assert {"cell types", "BreakHis"} <= heads and not any("papers only" in h for h in heads)
    assert any("full protocol" in h for h in heads)
    # a changed key of a mapping parameter is named alone, not the whole mapping
    le = TASKS.get("label-efficiency").version
    assert f"label-efficiency / synth-bm v{le} · synthetic twin · demo settings: calibration.n 25, repetitions 10" in heads
    assert not any(re.search(r"params [0-9a-f]{8}", h) for h in heads)
    assert report.reported == N_REPORTED


def test_published_tables_say_which_protocol_differs(site):
    """Wenderoth's Table 4 adaptation is over 15 Matek-blood classes (hemabench scores 11): marked, never
    paired; Table 3's direct transfer is over the same 11 classes: only its remaining differences."""
    site_dir, _, _ = site
    _, board = page(site_dir, "tasks/bm-to-blood--matek-blood--reported-*.html")
    published = board.find("table", id="published")
    heads = [text(th) for th in list(published.find("thead").find_all("tr"))[-1].find_all("th")]
    protocol = next(r for r in rows_of(published) if text(r.find("th")) == "protocol")
    cells = dict(zip(heads[1:], [text(td) for td in protocol.find_all("td")]))
    table4 = cells["wenderoth-xcit-dino-bm (wenderoth, Table 4)"]
    assert table4.startswith("other class set (15 classes in the paper, 11 scored by hemabench): never paired")
    assert "class set" not in cells["wenderoth-xcit-dino-bm (wenderoth, Table 3)"]
    assert "fitted classes" in cells["wenderoth-xcit-dino-bm (wenderoth, Table 3)"]
    _, acevedo = page(site_dir, "tasks/cell-knn--acevedo--[0-9a-f]*.html")
    rows = rows_of(acevedo.find("table", id="published"))
    assert all("matches this board" in text(list(r.find_all("td"))[1]) for r in rows)  # the fixture's protocol


class TableTexts(HTMLParser):
    """Each table's header and body cells as a browser's textContent (document order, whitespace collapsed)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.table = self.section = self.row = self.cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.table = self.tables.setdefault(dict(attrs).get("id"), {"thead": [], "tbody": []})
        elif tag in ("thead", "tbody") and self.table is not None:
            self.section = self.table[tag]
        elif tag == "tr" and self.section is not None:
            self.row = []
            self.section.append(self.row)
        elif tag in ("th", "td") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self.cell is not None:
            self.row.append(re.sub(r"\s+", " ", "".join(self.cell)).strip())
            self.cell = None
        elif tag == "table":
            self.table = self.section = self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def csv_matches_table(html_path: Path, table_id: str, cells: dict) -> None:
    html = html_path.read_text()  # each table's link names the page and the table id
    href = re.search(rf'href="([^"]*--{re.escape(table_id)}\.csv)"', html).group(1)
    frame = pd.read_csv(html_path.parent / href, dtype=str, keep_default_na=False)
    assert [c if not c.startswith("Unnamed: ") else "" for c in frame.columns] == cells["thead"][-1]
    assert frame.values.tolist() == cells["tbody"]


def test_every_table_downloads_as_csv_equal_to_the_table_and_boards_as_json(site):
    site_dir, run, _ = site
    for pattern in ("index.html", "tasks/cell-knn--acevedo--[0-9a-f]*.html", "encoders/dinobloom-s.html"):
        path, _ = page(site_dir, pattern)
        (parser := TableTexts()).feed(path.read_text())
        assert len(parser.tables) >= 2
        for table_id, cells in parser.tables.items():
            csv_matches_table(path, table_id, cells)
    whole = json.loads((site_dir / "downloads" / "leaderboard.json").read_text())
    board = next(b for b in whole["boards"] if (b["task"], b["dataset"]) == ("cell-knn", "acevedo"))
    assert board["runs"][0]["main"]["mean"] == run["metrics"]["k20/balanced_accuracy"]["mean"]
    assert board["runs"][0]["encoder_cost"] == COST
    assert {r["tier"] for r in board["reported"]} == {"paper"} and len(board["reproduced_minus_reported"]) == 4
    assert sum(len(b["reported"]) for b in whole["papers_only"]) + sum(len(b["reported"]) for b in whole["boards"]) == N_REPORTED


def test_index_rows_carry_the_filter_attributes(site):
    site_dir, _, _ = site
    _, index = page(site_dir, "index.html")
    rows = {r.attrs["id"]: r for r in rows_of(index.find("table", id="leaderboard"))}
    assert rows["row-dinobloom-s"].attrs["data-trained"] == "aml-hehr matek-blood matek-bm raabin"
    assert rows["row-dinobloom-s"].attrs["data-family"] == "dinobloom" and rows["row-dinobloom-s"].attrs["data-tier"] == "run"
    assert rows["paper-dinobloom-s"].attrs["data-tier"] == "paper"
    assert rows["row-handcrafted"].attrs["data-params"] == "0.0"


PROBE = """<script>
(function () {
  var out = {}, table = document.getElementById("leaderboard"), wrap = table.parentElement;
  var first = table.tBodies[0].rows[0].cells[0];
  out.sticky = getComputedStyle(first).position;
  out.pageScroll = document.documentElement.scrollWidth - window.innerWidth;
  out.tableScroll = wrap.scrollWidth - wrap.clientWidth;
  var other = table.tBodies[0].rows[0].cells[8];
  var before = first.getBoundingClientRect().left, otherBefore = other.getBoundingClientRect().left;
  wrap.scrollLeft = 400;
  out.pinnedShift = first.getBoundingClientRect().left - before;
  out.otherShift = other.getBoundingClientRect().left - otherBefore;
  wrap.scrollLeft = 0;
  function shown() { return Array.prototype.filter.call(table.tBodies[0].rows, function (r) {
    return r.offsetParent !== null; }).map(function (r) { return r.id; }); }
  out.all = shown();
  var family = document.getElementById("filter-family");
  family.value = "dinobloom"; family.dispatchEvent(new Event("change"));
  out.dinobloom = shown();
  family.value = ""; family.dispatchEvent(new Event("change"));
  var trained = document.getElementById("filter-trained");
  trained.value = "matek-bm"; trained.dispatchEvent(new Event("change"));
  out.notTrainedOnMatekBm = shown();
  trained.value = ""; trained.dispatchEvent(new Event("change"));
  var params = document.getElementById("filter-params");
  params.value = "30"; params.dispatchEvent(new Event("change"));
  out.small = shown();
  params.value = ""; params.dispatchEvent(new Event("change"));
  out.csv = wrap.nextElementSibling.querySelector("a.csv").getAttribute("href");
  var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
  function clean(cell) { var c = cell.cloneNode(true); c.querySelectorAll("button").forEach(function (b) { b.remove(); });
    return c.textContent.replace(/\\s+/g, " ").trim(); }
  out.head = Array.prototype.map.call(heads, clean);
  out.body = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return Array.prototype.map.call(r.cells, clean); });
  document.body.setAttribute("data-probe", JSON.stringify(out));
})();
</script>"""


@pytest.mark.slow
def test_index_in_headless_chromium_at_1366(site):
    """The built index (plus a probe script appended to a copy beside it) at 1366x768."""
    site_dir, _, _ = site
    browser = ensure_chromium()
    probe = site_dir / "index-probe.html"
    probe.write_text((site_dir / "index.html").read_text().replace("</body>", PROBE + "\n</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1366,768",
             f"--user-data-dir={site_dir.parent / 'chromium'}"]
    out = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    found = parse(out.stdout).find("body").attrs["data-probe"]
    result = json.loads(found)
    assert result["sticky"] == "sticky" and abs(result["pinnedShift"]) <= 1  # sub-pixel: collapsed borders
    assert result["otherShift"] < -300  # the board columns did scroll under it
    assert result["pageScroll"] <= 0 < result["tableScroll"]  # board columns scroll inside the table only
    assert "row-handcrafted" in result["all"] and "paper-dinobloom-s" in result["all"]
    assert set(result["dinobloom"]) == {"row-dinobloom-s", "paper-dinobloom-s", "paper-dinobloom-b",
                                        "paper-dinobloom-l", "paper-dinobloom-g"}
    assert not any("dinobloom" in r for r in result["notTrainedOnMatekBm"]) and "row-handcrafted" in result["notTrainedOnMatekBm"]
    assert "row-resnet18-random" in result["small"] and "paper-dinobloom-g" not in result["small"]
    frame = pd.read_csv(site_dir / result["csv"], dtype=str, keep_default_na=False)
    assert [c if not c.startswith("Unnamed") else "" for c in frame.columns] == result["head"]
    assert frame.values.tolist() == result["body"]
    keep = Path(os.environ.get("HEMABENCH_SCREENSHOTS", site_dir.parent))
    keep.mkdir(parents=True, exist_ok=True)
    task, _ = page(site_dir, "tasks/cell-knn--acevedo--[0-9a-f]*.html")
    for name, target, size in (("index", site_dir / "index.html", "1366,768"), ("task", task, "1366,2400")):
        shot = keep / f"leaderboard-context-{name}.png"
        subprocess.run([browser, *flags[:-2], f"--window-size={size}", flags[-1], f"--screenshot={shot}", target.as_uri()],
                       capture_output=True, timeout=120, check=True)
        assert shot.stat().st_size > 10_000


def test_csv_cells_never_run_as_spreadsheet_formulas():
    from hemabench.leaderboard.downloads import table_csv

    table = {"columns": [{"text": "encoder"}, {"text": "score"}],
             "rows": [{"head": {"text": "=HYPERLINK(\"http://x\")"}, "cells": [{"text": "-3.50", "sub": "[-4, -3]"}]},
                      {"head": {"text": "@SUM(A1)"}, "cells": [{"text": "12.0", "badge": "paper"}]}]}
    frame = pd.read_csv(io.StringIO(table_csv(table)), dtype=str)
    assert frame.values.tolist() == [["'=HYPERLINK(\"http://x\")", "-3.50 [-4, -3]"], ["'@SUM(A1)", "12.0 paper"]]
