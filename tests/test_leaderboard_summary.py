"""The ten-second reading of the leaderboard: chance and collapse flags from stored confusions, who
leads a board and whether the lead is significant, and the index's summary block above the big table
with columns in family order, real data first and paper-only boards collapsed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_leaderboard import REFERENCES, find_chromium, fixture_site, make_result, parse  # noqa: F401  (fixture reused)

from hemabench.leaderboard.collect import Board, Entry
from hemabench.leaderboard.ranking import tie_ranks
from hemabench.leaderboard.summary import chance, collapsed, column_key, flags, lead, summary_rows
from hemabench.results import Result

LABELS = ["A", "B", "C", "D"]


def probe(encoder: str, pred: list[str], true: list[str]) -> Result:
    predictions = {"probe": {"id": [f"c{i}" for i in range(len(true))], "fold": [f"fold{i % 2}" for i in range(len(true))],
                             "true": true, "pred": pred}}
    return Result.of(make_result("cell-probe", "synth-bm", encoder, LABELS, predictions, "probe/balanced_accuracy"))


def test_chance_and_collapse_flags_from_the_stored_confusion():
    true = [LABELS[i % 4] for i in range(80)]
    one_class = probe("lazy", ["A"] * 76 + ["B"] * 4, true)  # 95% of predictions on A, balanced accuracy ~0.25
    assert chance(one_class) == 0.25
    assert collapsed(one_class) == ("A", 0.95)
    assert one_class.main.mean <= 0.25 + 0.05
    words = flags(one_class)
    assert any("predicts A for 95%" in w for w in words)
    good = probe("good", true, true)
    assert collapsed(good) is None and flags(good) == []


def board_of(results: dict[str, Result]) -> Board:
    board = Board(key=("cell-probe", "synth-bm", 1, "p", "f", "", "s@1", "probe/balanced_accuracy"),
                  entries={e: Entry(r, Path(f"{e}.json"), "local run") for e, r in results.items()})
    board.ranks, board.comparisons = tie_ranks(results, n_boot=200)
    return board


def test_lead_is_significant_only_against_every_other_encoder():
    rng = np.random.default_rng(0)
    true = [LABELS[i % 4] for i in range(400)]

    def noisy(acc):
        return [t if rng.random() < acc else LABELS[(LABELS.index(t) + 1) % 4] for t in true]

    clear = board_of({"best": probe("best", noisy(0.95), true), "worse": probe("worse", noisy(0.5), true)})
    assert lead(clear) == (["best"], True)
    close = board_of({"a": probe("a", noisy(0.80), true), "b": probe("b", noisy(0.79), true),
                      "c": probe("c", noisy(0.3), true)})
    leaders, significant = lead(close)
    assert not significant and set(leaders) == {"a", "b"}
    assert [r["verdict"] for r in summary_rows([close, clear])] == ["tie of 2", "significant lead"]


def test_family_order_puts_cell_types_and_real_data_first():
    keys = [("aml-mil", "synth-aml", 1), ("label-efficiency", "acevedo-mini", 1), ("cell-probe", "synth-bm", 1),
            ("cell-knn", "acevedo-mini", 1), ("breakhis-binary", "breakhis", 1), ("bm-to-blood", "synth-blood", 1)]
    ordered = [k[:2] for k in sorted(keys, key=lambda k: column_key(*k))]
    assert ordered == [("cell-knn", "acevedo-mini"), ("cell-probe", "synth-bm"), ("label-efficiency", "acevedo-mini"),
                       ("bm-to-blood", "synth-blood"), ("aml-mil", "synth-aml"), ("breakhis-binary", "breakhis")]


def test_index_opens_with_the_summary_then_the_table_then_collapsed_paper_boards(fixture_site):  # noqa: F811
    base, _ = fixture_site
    html = (base / "site" / "index.html").read_text()
    assert html.index('id="summary"') < html.index('id="notation"') < html.index('id="leaderboard"') \
        < html.index('<details id="papers-only-boards"')
    page = parse(html)
    summary = page.find("table", id="summary")
    rows = list(summary.find("tbody").find_all("tr"))
    families = [r.find("th").all_text() for r in rows]
    assert families[0] == "cell types" and families == sorted(families, key=lambda f: column_key(
        {"cell types": "cell-probe", "label efficiency": "label-efficiency", "transfer": "bm-to-blood",
         "AML subtype (MIL)": "aml-mil", "BreakHis": "breakhis-crossmag"}[f], "x", 1))
    groups = [th.all_text() for th in page.find("table", id="leaderboard").find("tr", class_="groups").find_all("th")]
    assert [g for g in groups if g] == ["cell types", "label efficiency", "transfer", "AML subtype (MIL)", "BreakHis"]
    # a leader at chance or collapsed is not shown as a clean lead (verdict cell independent of colour)
    warned = [list(row.find_all("td")) for row in rows if "⚠" in list(row.find_all("td"))[4].all_text()]
    assert warned  # bm-to-blood / synth-blood: resnet18-random leads at chance, mostly predicting one class
    for cells in warned:
        assert "leader ⚠" in cells[3].all_text() and "lead-sig" not in cells[3].attrs.get("class", "")
    # a synthetic board says so in its column head; the paper-only table has no run rows
    assert "synthetic twin" in page.find("table", id="leaderboard").find("thead").all_text()
    papers = page.find("table", id="papers-only")
    assert all(r.attrs.get("data-tier") == "paper" for r in papers.find("tbody").find_all("tr"))


def test_board_pages_carry_the_data_badge_chance_and_flags(fixture_site):  # noqa: F811
    """Each board of the fixture: badge and chance from the dataset; a ranking cell is flagged exactly when an
    independent reading of its JSON (mean vs 1/classes, column shares of the confusion) says so."""
    import json

    base, _ = fixture_site
    results = {(p.parent.parent.parent.name, p.parent.name, p.stem): json.loads(p.read_text())
               for p in (base / "submissions").rglob("results/*/*.json")}
    checked = 0
    for (encoder, task, dataset), data in results.items():
        page = parse(next((base / "site" / "tasks").glob(f"{task}--{dataset}--*.html")).read_text())
        assert "synthetic twin" in page.find("h1").all_text()
        n = len(data["labels"])
        chance_dd = page.find("dd", class_="chance")
        assert chance_dd is not None and float(chance_dd.attrs["data-chance"]) == 1 / n
        counts = np.asarray(data["confusion_matrix"]["counts"], dtype=float)
        share = counts.sum(axis=0).max() / counts.sum()
        expect = data["metrics"][data["main_metric"]]["mean"] <= 1 / n or share >= 0.8
        row = page.find("tr", id=f"enc-{encoder}")
        main = [td for td in row.find_all("td") if "data-mean" in td.attrs][0]
        assert ("data-flags" in main.attrs) == expect, (encoder, task, dataset, share)
        checked += expect
    assert checked >= 1  # the fixture holds at least one collapsed or at-chance result


def test_long_csv_is_numeric_and_matches_the_json(fixture_site):  # noqa: F811
    """leaderboard-long.csv loads with numeric columns; each run row equals its result file; tiers use the
    page's words; every board page links its own long CSV."""
    import json

    import pandas as pd

    base, _ = fixture_site
    frame = pd.read_csv(base / "site" / "downloads" / "leaderboard-long.csv")
    for column in ("mean", "std", "ci_low", "ci_high", "spread_low", "spread_high", "n_folds", "max_iter_hits"):
        assert pd.api.types.is_numeric_dtype(frame[column]), column
    assert set(frame["tier"]) <= {"verified", "self-reported", "paper"} and "run" not in set(frame["tier"])
    runs = frame[frame["tier"] != "paper"]
    checked = 0
    for path in (base / "submissions").rglob("results/*/*.json"):
        data = json.loads(path.read_text())
        encoder = path.parents[2].name
        mine = runs[(runs["encoder"] == encoder) & (runs["task"] == data["task"]) & (runs["dataset"] == data["dataset"])]
        assert len(mine) == len(data["metrics"])
        main = mine[mine["metric"] == data["main_metric"]].iloc[0]
        stored = data["metrics"][data["main_metric"]]
        assert main["mean"] == stored["mean"] and [main["ci_low"], main["ci_high"]] == stored["ci95"]
        assert main["n_folds"] == len(stored["values"])
        checked += 1
    assert checked == 6
    page = next((base / "site" / "tasks").glob("cell-probe--synth-bm--*.html")).read_text()
    ranking_end = page.index("</table>", page.index('id="ranking"'))
    link = page.index("--long.csv", ranking_end)
    assert page.find("<table", ranking_end) == -1 or link < page.find("<table", ranking_end)  # beside its table


def test_single_split_has_no_plus_minus_and_tooltips_are_rounded():
    from hemabench.leaderboard.tables import score_cell

    single = score_cell({"mean": 0.655, "std": 0.0, "values": [0.655], "ci95": [0.563, 0.745]})
    assert single["text"] == "65.5" and single["sub"] == "CI [56.3, 74.5]"
    repeated = score_cell({"mean": 0.1234567890123, "std": 0.05, "values": [0.1, 0.2], "ci95": [0.1, 0.2]},
                          note="max_iter 5/5")
    assert repeated["text"] == "12.3 ± 5.0 (max_iter 5/5)"
    assert "0.1235" in repeated["title"] and "0.1234567" not in repeated["title"] and "over 2 folds" in repeated["title"]
    assert repeated["data"]["mean"] == repr(0.1234567890123)  # exact value kept for checks and downloads


def test_metric_keys_in_words_with_their_direction():
    from hemabench.leaderboard.names import metric_label

    assert metric_label("adapt/n=25/rep000/balanced_accuracy") == "balanced accuracy ↑ (adapt, n=25, repetition 0)"
    assert metric_label("offdiag/patient_accuracy") == "patient accuracy ↑ (offdiag)"
    for key in ("probe/aurc", "probe/brier", "probe/ece", "probe/nll_ts", "shift/drop_balanced_accuracy"):
        assert metric_label(key).split(" (")[0].endswith("↓"), key
    assert metric_label("probe/ece_ts") == "ECE, temperature-scaled ↓ (probe)"
    assert metric_label("shift/drop_sensitivity_EOS") == "drop in sensitivity of EOS ↓ (shift)"


# Measured in the browser after layout, written into the DOM that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const box = e => e.getBoundingClientRect(), W = document.documentElement.clientWidth;
  const summary = document.getElementById("summary");
  const leader = document.querySelector("#summary tr.real td:nth-child(4)");
  const wide = [...document.querySelectorAll("table")].filter(t => box(t.closest(".table-wrap") || t).right > W + 1);
  const astray = [...document.querySelectorAll("p.download")].filter(p => {
    let prev = p.previousElementSibling;
    while (prev && prev.matches("p.download")) prev = prev.previousElementSibling;
    if (!(prev && prev.matches(".table-wrap, .table-block"))) return true;
    const [d, t] = [box(p), box(prev)];  /* drawn right under its own table, not beside another one */
    return prev.offsetParent !== null && (d.top < t.bottom - 1 || d.left < t.left - 1 || d.left > t.right);
  });
  document.body.setAttribute("data-probe", JSON.stringify({
    summary: summary ? box(summary).bottom : null, leader: leader ? box(leader).bottom : null,
    summaryWidth: summary ? box(summary).width : null,  /* against the room its scrolling wrapper gives it */
    summaryRoom: summary ? summary.closest(".table-wrap").clientWidth : null,
    leaderText: leader ? leader.textContent : null, height: window.innerHeight, width: W,
    pageWidth: document.documentElement.scrollWidth, wide: wide.map(t => t.id),
    astray: astray.map(p => p.textContent.trim().slice(0, 60))}));
});
</script>"""


@pytest.mark.slow
def test_index_at_1366x768_in_chromium(tmp_path):
    """The committed references at 1366x768: the summary and the first real board's leader are above the
    fold, the summary fits the window without scrolling sideways, no table overflows the page, every download
    link follows its table (index and one board page)."""
    browser = find_chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from hemabench.leaderboard import build_site

    build_site(tmp_path / "site", REFERENCES, [], figures=False)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}", "--window-size=1366,768"]
    tasks = tmp_path / "site" / "tasks"
    boards = [next(tasks.glob(f"{name}--*.html")) for name in ("cell-probe--acevedo-mini", "blood-shift--synth-blood",
                                                               "breakhis-crossmag--synth-breakhis")]
    for page in (tmp_path / "site" / "index.html", *boards):
        probed = page.with_name(f"probe-{page.name}")
        probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        out = subprocess.run([browser, *flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-500:]
        facts = json.loads(parse(out.stdout).find("body").attrs["data-probe"])
        assert facts["wide"] == [] and facts["pageWidth"] <= facts["width"], (page.name, facts)
        assert facts["astray"] == [], (page.name, facts["astray"])
        if page.name == "index.html":
            assert facts["summary"] <= facts["height"], facts  # the whole summary table is above the fold
            assert facts["summaryWidth"] <= facts["summaryRoom"] + 1, facts  # ... and no column scrolled out of view
            assert facts["leader"] is not None and facts["leader"] <= facts["height"] and facts["leaderText"], facts


def test_class_legend_comes_from_the_dataset_spec():
    from hemabench.datasets import DATASETS
    from hemabench.leaderboard.pages import class_legend

    legend = class_legend("matek-blood", ["MYB", "NGB", "PMO", "unknown-code"])
    assert legend == {code: DATASETS.get("matek-blood").classes[code] for code in ("MYB", "NGB", "PMO")}
    assert legend["PMO"] == "promyelocyte" and class_legend("not-registered", ["A"]) == {}
