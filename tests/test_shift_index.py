"""blood-shift's PathoROB robustness index: against scikit-learn's neighbours, its known values on
hand-built panels (class-only clusters 1, centre-only clusters 0, no structure (C-1)/(C+K-2)), a
stored table that disagrees with the cells or with index_k refused, and its board table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from hemabench.tasks import TASKS
from hemabench.tasks.blood_shift import IN_DOMAIN
from hemabench.tasks.shift_index import INDEX, index_scores, index_table

CENTRES, CLASSES, PER = ("lab-a", "lab-b", "lab-c"), ("BAS", "EOS", "LYT", "NEU"), 12


def _panel(structure: str, seed: int = 0, noise: float = 0.05):
    """PER cells per centre x class: embeddings clustered by class, by centre, or not at all."""
    rng = np.random.default_rng(seed)
    centre = np.repeat(CENTRES, len(CLASSES) * PER)
    label = np.tile(np.repeat(CLASSES, PER), len(CENTRES))
    ids = np.array([f"{c}/{y}/{i:03d}.png" for i, (c, y) in enumerate(zip(centre, label))])
    dim = 16
    if structure == "none":
        features = rng.normal(size=(len(ids), dim))
    else:
        key = label if structure == "class" else centre
        names = sorted(set(key))
        anchors = np.eye(dim)[: len(names)] * 10
        features = anchors[[names.index(v) for v in key]] + rng.normal(0, noise, (len(ids), dim))
    return ids, centre, label, features


def _index(ids, centre, label, features, k, cap=100, seed=0):
    table = index_table(ids, centre, label, features, k, cap, seed)
    own = {"id": list(ids), "fold": list(centre), "true": list(label)}
    return table, index_scores(own, table, k, cap, seed, n_boot=200)


def _sklearn_index(centre, label, features, k) -> tuple[float, np.ndarray]:
    """PathoROB's counting done independently: scikit-learn's k + 1 nearest (self first), pooled SO / (SO + OS)."""
    x = normalize(features)
    _, nb = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    assert np.all(nb[:, 0] == np.arange(len(x)))  # no duplicates: each cell is its own nearest
    nb = nb[:, 1:]
    same_class, same_centre = label[nb] == label[:, None], centre[nb] == centre[:, None]
    so, os_ = (same_class & ~same_centre).sum(), (~same_class & same_centre).sum()
    return so / (so + os_), nb


@pytest.mark.parametrize("k", [1, 7, 30])
def test_index_matches_sklearn_neighbours_counted_independently(k):
    ids, centre, label, features = _panel("none", seed=k)
    features[: len(ids) // 2] += 0.8 * np.eye(16)[[CLASSES.index(y) for y in label[: len(ids) // 2]]]
    table, out = _index(ids, centre, label, features, k)
    expected, nb = _sklearn_index(centre, label, features, k)
    assert [[int(v) for v in line.split()] for line in table["neighbours"]] == nb.tolist()
    assert out["shift/robustness_index"]["mean"] == pytest.approx(expected, abs=1e-12)
    low, high = out["shift/robustness_index"]["ci95"]
    assert 0 <= low <= expected <= high <= 1 and high - low > 0


def test_index_is_one_for_class_clusters_zero_for_centre_clusters_and_chance_without_structure():
    by_class = _index(*_panel("class"), k=10)[1]
    by_centre = _index(*_panel("centre"), k=10)[1]
    assert by_class["shift/robustness_index"]["mean"] == 1.0
    assert by_class["shift/robustness_index"]["ci95"] == [1.0, 1.0]
    assert by_class["shift/knn_other_class_same_centre"]["mean"] == 0.0
    assert by_centre["shift/robustness_index"]["mean"] == 0.0
    assert by_centre["shift/knn_same_class_other_centre"]["mean"] == 0.0
    # no structure: SO and OS in proportion to the cells available, (C - 1) : (K - 1)
    chance = (len(CENTRES) - 1) / (len(CENTRES) + len(CLASSES) - 2)
    means = [_index(*_panel("none", seed=s), k=20)[1]["shift/robustness_index"]["mean"] for s in range(5)]
    assert np.mean(means) == pytest.approx(chance, abs=0.03)


def test_cells_are_the_shared_classes_capped_per_centre_and_class():
    ids, centre, label, features = _panel("none")
    keep = ~((centre == "lab-c") & (label == "BAS"))  # lab-c tests no BAS: BAS leaves the index
    table, _ = _index(ids[keep], centre[keep], label[keep], features[keep], k=5, cap=4)
    pairs = list(zip(table["centre"], table["class"]))
    assert set(table["class"]) == {"EOS", "LYT", "NEU"}
    assert all(pairs.count(p) == 4 for p in set(pairs)) and len(pairs) == 3 * 3 * 4
    one = index_table(ids[centre == "lab-a"], centre[centre == "lab-a"], label[centre == "lab-a"],
                      features[centre == "lab-a"], 5, 100, 0)
    assert one is None  # one centre: no index


def test_a_table_that_disagrees_with_the_cells_or_with_k_is_refused():
    ids, centre, label, features = _panel("none")
    table, out = _index(ids, centre, label, features, k=5)
    own = {"id": list(ids), "fold": list(centre), "true": list(label)}
    relabelled = {**table, "class": ["NEU"] + table["class"][1:]}
    with pytest.raises(ValueError, match=f"extra.{INDEX}.class is not"):
        index_scores(own, relabelled, 5, 100, 0)
    with pytest.raises(ValueError, match="index_k = 7 needs 7"):
        index_scores(own, table, 7, 100, 0)
    selfish = {**table, "neighbours": [" ".join(["0", *line.split()[1:]]) for line in table["neighbours"]]}
    with pytest.raises(ValueError, match="a cell's own"):
        index_scores(own, selfish, 5, 100, 0)
    with pytest.raises(ValueError, match="one line of space-separated row numbers per cell"):
        index_scores(own, {**table, "neighbours": table["neighbours"][:-1]}, 5, 100, 0)
    first = " ".join(table["neighbours"][0].split()[::-1])  # the same neighbours in another order: same counts
    moved = {**table, "neighbours": [first, *table["neighbours"][1:]]}
    assert index_scores(own, moved, 5, 100, 0, n_boot=200) == index_scores(own, table, 5, 100, 0, n_boot=200)
    assert out == index_scores(own, table, 5, 100, 0, n_boot=200)  # the numbers are a function of the table


def test_blood_shift_summarise_recomputes_the_index_from_the_stored_table():
    task = TASKS.get("blood-shift").with_params(index_k=4, index_cells=6)
    ids, centre, label, features = _panel("class", noise=3.0)
    table = index_table(ids, centre, label, features, 4, 6, task.params["calibration_seed"])
    own = {"id": list(ids), "fold": list(centre), "true": list(label), "pred": list(label)}
    a = [i for i, c in enumerate(centre) if c == "lab-a"]
    shifted = {"id": list(ids[a]), "fold": ["lab-b->lab-a"] * len(a), "true": list(label[a]), "pred": list(label[a])}
    fresh = task.summarise({IN_DOMAIN: own, "shifted": shifted}, list(CLASSES), {INDEX: table})
    direct = index_scores(own, table, 4, 6, task.params["calibration_seed"])
    assert fresh["shift/robustness_index"] == direct["shift/robustness_index"]
    with pytest.raises(ValueError, match=f"extra.{INDEX} is missing"):  # dropping the table hides no index
        task.summarise({IN_DOMAIN: own, "shifted": shifted}, list(CLASSES), {})


def test_the_index_and_its_shares_read_with_their_direction():
    from hemabench.leaderboard.names import metric_label

    assert metric_label("shift/robustness_index") == "robustness index (PathoROB) ↑ (shift)"
    assert metric_label("shift/knn_same_class_other_centre").split(" (")[0].endswith("↑")
    assert metric_label("shift/knn_other_class_same_centre").split(" (")[0].endswith("↓")


def test_documented_with_its_citation_where_the_task_points():
    from pathlib import Path

    from test_task_params import github_anchor

    pointer = TASKS.get("blood-shift").method["robustness index"].rsplit(" ", 1)[-1]
    path, _, anchor = pointer.partition("#")
    doc = (Path(__file__).resolve().parents[1] / path).read_text()
    assert anchor in {github_anchor(line.lstrip("#")) for line in doc.splitlines() if line.startswith("#")}
    assert "shift/robustness_index" in doc and "arXiv:2507.17845" in doc and "index_k" in doc
