"""The robustness section of a ``robustness`` board: severity curves, areas, and image strips.

Read from the result JSON alone: variants ``<family>-s<k>`` with ``balanced_accuracy`` and
``cosine`` (severity 0 is the ``clean`` variant: its balanced accuracy, cosine 1), and the
``<family>/normalised_auc`` areas. The strips show one real cell (bundled with the package,
acevedo-mini) at severity 0..5 of each family, perturbed by the very code the task uses, so a
reader sees what "severity 3 defocus" means.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from hemabench.images.perturb import CONTROL, LEVELS, PERTURBATION_VERSION, SEVERITIES, perturb
from hemabench.leaderboard import figures
from hemabench.leaderboard.collect import Board
from hemabench.leaderboard.tables import as_table, score_cell

VIEW = re.compile(r"^(?P<family>[a-z]+)-s(?P<severity>\d+)$")
METRICS = {"balanced_accuracy": "balanced accuracy (%)", "cosine": "cosine similarity clean vs perturbed"}
STRIP_DATASET, STRIP_CLASS, STRIP_PX = "acevedo-mini", "NGS", 112  # a neutrophil of the bundled sample


def severity_frame(board: Board) -> pd.DataFrame:
    """encoder, family, severity, metric, mean, low, high for every view of every entry (and severity 0)."""
    rows = []
    for encoder, entry in board.entries.items():
        metrics, families = entry.result.metrics, set()
        for key, score in metrics.items():
            variant, _, metric = key.rpartition("/")
            match = VIEW.match(variant)
            if match and metric in METRICS:
                families.add(match["family"])
                rows.append({"encoder": encoder, "family": match["family"], "severity": int(match["severity"]),
                             "metric": metric, "mean": score["mean"], "low": score["ci95"][0], "high": score["ci95"][1]})
        clean = metrics.get("clean/balanced_accuracy")
        for family in families:
            rows.append({"encoder": encoder, "family": family, "severity": 0, "metric": "cosine", "mean": 1.0,
                         "low": 1.0, "high": 1.0})
            if clean:
                rows.append({"encoder": encoder, "family": family, "severity": 0, "metric": "balanced_accuracy",
                             "mean": clean["mean"], "low": clean["ci95"][0], "high": clean["ci95"][1]})
    return pd.DataFrame(rows)


def robustness_section(board: Board, site) -> dict | None:
    frame = severity_frame(board)
    if frame.empty:
        return None
    families = [f for f in SEVERITIES if f in set(frame["family"])] + \
        sorted(set(frame["family"]) - set(SEVERITIES))  # the code's order; unknown families last
    figure = site.figure(f"{board.slug}-severity.svg", figures.severity_figure, frame, families, METRICS)
    areas = pd.DataFrame({encoder: {"all but control": score_cell(entry.result.metrics.get("robustness/normalised_auc")),
                                    **{f: score_cell(entry.result.metrics.get(f"{f}/normalised_auc")) for f in families}}
                          for encoder, entry in board.entries.items()}).T.loc[board.sorted_encoders()]
    strips = [{"family": f, "href": site.figure(f"robustness-strip-{f}-v{PERTURBATION_VERSION}.png", draw_strip, f),
               "levels": ["clean"] + [", ".join(f"{k} {v:g}" for k, v in level.items()) for level in SEVERITIES[f]],
               "control": f == CONTROL}
              for f in families if f in SEVERITIES]
    first = board.first
    params, extra = first.params, board.entries[board.sorted_encoders()[0]].result.extra
    return {"figure": figure, "strips": strips, "version": PERTURBATION_VERSION,
            "cells": extra.get("n_test"), "cap": params.get("max_test_cells"), "train": extra.get("n_train"),
            "families": families, "severities": params.get("severities"),
            "areas": as_table(areas, "robustness-areas", "normalised area under balanced accuracy over severity 0-5, % "
                                                         "(100 = no loss; CI = 95% paired bootstrap interval)",
                              index_name="encoder")}


def strip_cell() -> tuple[Path, str]:
    """(file, record path) of the bundled cell the strips show."""
    from hemabench.datasets import DATASETS, find_root

    spec = DATASETS.get(STRIP_DATASET)
    found = spec.discover(find_root(spec))
    rel = str(found.records.loc[found.records["label"] == STRIP_CLASS, "path"].iloc[0])
    return found.root / rel, rel


def draw_strip(path: Path, family: str) -> str:
    """A PNG of the cell at severity 0..5 side by side (the record path seeds the draws, as in the task)."""
    from PIL import Image

    file, rel = strip_cell()
    with Image.open(file) as image:
        image = image.convert("RGB")
        tiles = [perturb(image, family, s, rel) for s in range(LEVELS + 1)]
    tiles = [t.resize((STRIP_PX, round(STRIP_PX * t.height / t.width)), Image.Resampling.LANCZOS) for t in tiles]
    gap = 4
    strip = Image.new("RGB", (len(tiles) * (STRIP_PX + gap) - gap, tiles[0].height), (255, 255, 255))
    for i, tile in enumerate(tiles):
        strip.paste(tile, (i * (STRIP_PX + gap), 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path, format="PNG", optimize=True)
    return path.name
