"""Issue 29's finish, read from the built site and from the figures' matplotlib objects: no long hex digest
in a user-facing cell, variants in numeric order, NLL and Brier on their own scale (never "%"), † on paper
pages, BreakHis items called patches, attention weights rounded with a reason when images are absent, and
figures whose axes, ticks, labels and legends fit the data.

The site is built (tables only) from the committed reference submissions; no result is fabricated here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_leaderboard import REFERENCES
from test_leaderboard_context import TableTexts, page, rows_of, text

from hemabench.leaderboard import figures

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
LONG_HEX = re.compile(r"[0-9a-f]{16,}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from hemabench.leaderboard import build_site

    out = tmp_path_factory.mktemp("polish") / "site"
    build_site(out, REFERENCES, [], figures=False)
    return out


def reference(encoder: str, task: str, dataset: str) -> dict:
    return json.loads((REFERENCES / encoder / "results" / task / f"{dataset}.json").read_text())


def test_no_long_hex_digest_in_any_table_cell_or_fact_and_the_full_one_on_hover(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 30
    for path in pages:
        html = path.read_text()
        (tables := TableTexts()).feed(html)
        for table_id, table in tables.tables.items():
            for row in table["thead"] + table["tbody"]:
                for cell in row:
                    assert not LONG_HEX.search(cell), (path.name, table_id, cell)
        facts = re.sub(r'<dl class="facts spec">.*?</dl>', "", html, flags=re.S)  # the raw spec, collapsed
        for dd in re.findall(r"<dd[^>]*>(.*?)</dd>", facts, flags=re.S):
            shown = re.sub(r"<[^>]+>", " ", dd)
            assert not LONG_HEX.search(shown), (path.name, shown)
    fingerprint = reference("handcrafted", "cell-probe", "acevedo-mini")["split"]["fingerprint"]
    assert HEX64.fullmatch(fingerprint)
    _, board = page(site, "tasks/cell-probe--acevedo-mini--*.html")
    cells = [td for td in board.find("table", id="provenance").find_all("td") if td.attrs.get("title") == fingerprint]
    assert cells and all(text(td) == fingerprint[:12] + "…" for td in cells)


def test_variants_and_all_metrics_in_numeric_order(site):
    _, board = page(site, "tasks/breakhis-limited--synth-breakhis--*.html")
    keys = [th.attrs["data-sort"] for th in board.find("table", id="variants").find("tbody").find_all("th")]
    parsed = [(m.group(1), int(m.group(2))) for m in (re.match(r"(\w+?)-(\d+)pct/", k) for k in keys)]
    assert len(parsed) == len(keys) > 8 and {p for _, p in parsed} >= {5, 10, 100}
    magnification = lambda m: int(m[:-1]) if m.endswith("x") else 10 ** 6  # noqa: E731 - 'all' after 400x
    assert parsed == sorted(parsed, key=lambda mp: (magnification(mp[0]), mp[1]))
    everything = [th.attrs["data-sort"] for th in board.find("table", id="all-metrics").find("tbody").find_all("th")]
    fives = [k for k in everything if k.startswith("40x-") and k.endswith("/patient_accuracy")]
    assert [int(re.search(r"-(\d+)pct", k).group(1)) for k in fives] == sorted(int(re.search(r"-(\d+)pct", k).group(1))
                                                                               for k in fives)


def test_nll_and_brier_on_their_own_scale_and_lower_is_better_marked(site):
    result = reference("handcrafted", "cell-probe", "acevedo-mini")
    _, board = page(site, "tasks/cell-probe--acevedo-mini--*.html")
    table = board.find("table", id="all-metrics")
    encoders = [text(th) for th in list(table.find("thead").find_all("tr"))[-1].find_all("th")][1:]
    column = encoders.index("handcrafted")
    seen = set()
    for row in rows_of(table):
        key, head = row.find("th").attrs["data-sort"], text(row.find("th"))
        name = key.rsplit("/", 1)[1].removesuffix("_ts")
        value = text(list(row.find_all("td"))[column]).split(" ")[0]
        stored = result["metrics"][key]["mean"]
        if name in ("nll", "brier"):
            seen.add(name)
            assert head.endswith("nats" if name == "nll" else "0 to 2") and "%" not in head, head
            assert value == f"{stored:.3f}", (key, value)  # as stored, never x 100
        else:
            assert head.endswith(", %") and value == f"{100 * stored:.1f}", (key, value)
        if name in ("aurc", "brier", "ece", "nll") or name.startswith("drop_"):
            assert "↓" in head, head
    assert seen == {"nll", "brier"}
    calibration = board.find("table", id="calibration")
    heads = [text(th) for th in list(calibration.find("thead").find_all("tr"))[-1].find_all("th")]
    assert "Brier ↓, 0 to 2" in heads and "NLL ↓, nats" in heads and "ECE ↓, %" in heads
    row = next(r for r in rows_of(calibration) if text(r.find("th")) == "handcrafted")
    cells = dict(zip(heads[1:], [text(td).split(" ")[0] for td in row.find_all("td")]))
    variant = cells["variant"]
    assert cells["Brier ↓, 0 to 2"] == f"{result['metrics'][f'{variant}/brier']['mean']:.3f}"
    assert cells["ECE ↓, %"] == f"{100 * result['metrics'][f'{variant}/ece']['mean']:.1f}"


def test_dagger_on_paper_pages_for_encoders_trained_on_the_dataset(site):
    from hemabench.encoders import ENCODERS

    _, board = page(site, "tasks/cell-knn--matek-bm--reported-*.html")
    published = board.find("table", id="published")
    assert "† = the encoder was trained on (part of) this dataset" in text(published.find("caption"))
    checked = 0
    for row in rows_of(published):
        encoder = re.sub(r"\s*paper$", "", text(row.find("th")))  # the name, without its badge
        values = [text(td) for td in row.find_all("td") if "reported" in (td.attrs.get("class") or "")]
        trained = "matek-bm" in ENCODERS.get(encoder).training_data if encoder in ENCODERS else False
        assert values and all(v.split(" paper")[0].endswith("†") == trained for v in values if v != "–"), encoder
        checked += trained
    assert checked >= 4  # the four DinoBloom sizes were trained on matek-bm
    assert "†" not in text(page(site, "tasks/breakhis-binary--breakhis--reported-*.html")[1].find("table", id="published"))


def test_items_are_named_for_the_dataset(site):
    for pattern, word in (("tasks/breakhis-binary--synth-breakhis--*.html", "patches"),
                          ("tasks/aml-mil--synth-aml--*.html", "patients"), ("tasks/cell-knn--synth-bm--*.html", "cells")):
        path, board = page(site, pattern)
        section = board.find("section", id="s-hard")
        assert text(section.find("h2")) == f"Hard {word}", pattern
        caption = text(section.find("table", id="hard-classes").find("caption"))
        assert caption == f"hard {word} per true class"
        if word != "cells":
            assert "Hard cells" not in path.read_text() and "test cells" not in text(section)


def test_attention_lists_rounded_weights_and_says_why_without_images(site, tmp_path, monkeypatch):
    result = reference("handcrafted", "aml-mil", "synth-aml")
    _, board = page(site, "tasks/aml-mil--synth-aml--*.html")
    gallery = board.find("details", id="attention-handcrafted")
    patient = sorted(result["extra"]["attention"])[0]
    first = result["extra"]["attention"][patient]["cells"][0]
    spans = {s.attrs["title"]: text(s) for s in gallery.find_all("span", class_="cellpath")}
    if gallery.find("img") is None:  # the synthetic twin is not generated in this test cache
        assert spans[first["path"]] == f"{Path(first['path']).name} {float(first['score']):.3g}"
        assert all(len(t.split(" ")[1]) <= 6 for t in spans.values())  # rounded, not 6 decimals
        note = text(gallery.find("p", class_="note images-note"))
        assert note.startswith("images not shown:") and "synth-aml" in note
    from PIL import Image

    from hemabench.datasets import DATASETS
    from hemabench.leaderboard.build import BuildReport, Site

    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))
    spec = DATASETS.get("synth-aml")
    bare = Site(tmp_path / "s1", None, BuildReport(tmp_path / "s1"))
    assert "not generated" in bare.images_note("synth-aml") and bare.thumbnail("synth-aml", first["path"]) is None
    image = spec.generated_folder() / first["path"]
    image.parent.mkdir(parents=True)
    Image.new("RGB", (120, 120), (180, 60, 140)).save(image)
    generated = Site(tmp_path / "s2", None, BuildReport(tmp_path / "s2"))  # no --data-root: the cache is enough
    href = generated.thumbnail("synth-aml", first["path"])
    assert generated.images_note("synth-aml") == "" and href and (tmp_path / "s2" / href[3:]).is_file()
    assert "--data-root" in bare.images_note("aml-hehr")


# -- figures: the matplotlib objects before they are written ---------------------------------------
@pytest.fixture
def drawn(monkeypatch):
    kept = []

    def keep(fig, path):
        fig.canvas.draw()
        kept.append(fig)
        return path.name

    monkeypatch.setattr(figures, "_save", keep)
    return kept


def inside(inner, outer, slack=1.0) -> bool:
    return (inner.x0 >= outer.x0 - slack and inner.x1 <= outer.x1 + slack and inner.y0 >= outer.y0 - slack
            and inner.y1 <= outer.y1 + slack)


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_pareto_axes_fit_the_data_names_stay_inside_one_value_is_text(drawn, tmp_path):
    frame = pd.DataFrame({"encoder": ["handcrafted", "resnet18-random"], "score": [0.83, 0.722],
                          "images_per_s": [55.0, 130.0], "gflops": [np.nan, 1.82],
                          "device": ["cpu (x86_64, 2 threads)"] * 2})
    figures.pareto_figure(tmp_path / "p.svg", frame, "synth-breakhis", "all/patient_accuracy")
    fig = drawn[-1]
    speed, flops = fig.axes[:2]
    low, high = speed.get_xlim()
    assert low < 55 and high > 130 and high / low < 2.36 * 2  # the axis spans the data, with a margin
    labels = [t.get_text() for t in speed.get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"[0-9.]+", t) for t in labels), labels  # plain numbers, not 6x10^1
    assert speed.get_ylabel() == "patient accuracy ↑ (all), %"
    box = speed.get_window_extent()
    names = [t for t in speed.texts if t.get_text() in ("handcrafted", "resnet18-random")]
    assert len(names) == 2 and all(inside(t.get_window_extent(), box) for t in names)  # never "resnet18-rando"
    assert not flops.axison and "resnet18-random: 1.82 GFLOPs" in " ".join(t.get_text() for t in flops.texts)
    legend = fig.legends[0].get_window_extent()
    assert not overlaps(legend, box) and not overlaps(legend, flops.get_window_extent())


def test_label_efficiency_ticks_are_the_measured_n_and_the_legend_is_outside(drawn, tmp_path):
    rows = [{"encoder": e, "classifier": "svm", "n": n, "mean": 0.2 + 0.05 * i, "low": 0.15, "high": 0.3}
            for e in ("a", "b") for i, n in enumerate((1, 5, 10))]
    figures.curves_figure(tmp_path / "c.svg", pd.DataFrame(rows), "acevedo-mini", None, 1 / 8)
    ax = drawn[-1].axes[0]
    assert list(ax.get_xticks()) == [1, 5, 10] and [t.get_text() for t in ax.get_xticklabels()] == ["1", "5", "10"]
    assert ax.get_xscale() == "log"
    assert not overlaps(ax.get_legend().get_window_extent(), ax.get_window_extent())


def test_severity_legend_is_off_the_lines(drawn, tmp_path):
    rows = [{"encoder": e, "family": f, "severity": s, "metric": "balanced_accuracy", "mean": 0.9 - 0.1 * s,
             "low": 0.8 - 0.1 * s, "high": 0.95 - 0.1 * s} for e in ("a", "b") for f in ("stain", "noise") for s in range(6)]
    figures.severity_figure(tmp_path / "s.svg", pd.DataFrame(rows), ["stain", "noise"],
                            {"balanced_accuracy": "balanced accuracy (%)"})
    fig = drawn[-1]
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())
    assert not any(overlaps(legend.get_window_extent(), ax.get_window_extent()) for ax in fig.axes)


def test_cost_heatmap_scale_ends_at_the_largest_cost(drawn, tmp_path):
    matrix = [[0, 2, 1], [2, 0, 1], [1, 1, 0]]
    figures.heatmap(tmp_path / "h.svg", matrix, list("ABC"), list("ABC"), "cost", "predicted", "true", ".1f", None)
    mesh = drawn[-1].axes[0].collections[0]
    assert mesh.get_clim() == (0, 2)


def test_keys_read_as_words_with_the_key_on_hover(site):
    _, index = page(site, "index.html")
    for row in rows_of(index.find("table", id="boards")):
        metric = list(row.find_all("td"))[1]
        assert "/" not in text(metric) and text(metric)[-1] != "_" and "/" in metric.attrs["title"], text(metric)
        assert re.search("[↑↓]", text(metric)), text(metric)
    _, encoder = page(site, "encoders/handcrafted.html")
    facts = encoder.find("dl", id="submission")
    submission = dict(zip((text(dt) for dt in facts.find_all("dt")), (text(dd) for dd in facts.find_all("dd"))))
    assert submission["not trained on test splits"] == "yes" and "submitted by" in submission
    assert not any("_" in k for k in submission), list(submission)
    for row in rows_of(encoder.find("table", id="results")):
        assert re.search("[↑↓]", text(list(row.find_all("td"))[0])) and "params " not in text(row.find("th"))
    _, crossmag = page(site, "tasks/breakhis-crossmag--synth-breakhis--*.html")
    summary = crossmag.find("table", id="crossmag-handcrafted-summary")
    assert "off diagonal" in text(summary.find("thead")) and "_" not in text(summary)
