"""Bring your own data: folder:, hf: and hf-disk: datasets through data verify/splits, run, extract and the leaderboard."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("BLA", "LYM", "NEU")
FORMATS = {".jpg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".bmp": "BMP"}


@pytest.fixture(autouse=True)
def fresh_custom(tmp_path, monkeypatch):
    """Each test sees its own custom datasets, HF cache and embedding cache."""
    import datasets

    from hemabench.datasets.resolve import forget_custom

    forget_custom()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))
    datasets.disable_progress_bars()  # the fixtures' own save_to_disk bars would mix with the CLI's stderr
    yield
    datasets.enable_progress_bars()
    forget_custom()


def cell_image(label_index: int, seed: int, size: int = 16, mode: str = "RGB") -> Image.Image:
    """A tiny image whose colour depends on its class, so embeddings carry the label."""
    rng = np.random.default_rng(seed)
    base = np.array([60 + 70 * label_index, 180 - 50 * label_index, 90 + 20 * label_index], dtype=float)
    pixels = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    (image.convert("RGB") if fmt == "JPEG" else image).save(buffer, format=fmt)
    return buffer.getvalue()


def class_folder_tree(root: Path, per_class: int = 10) -> Path:
    """<class>/[nested/]<image> in jpg/png/tif/bmp, sizes 14-20 px, modes RGB/L/RGBA/P; one truncated
    file, one text file, an empty class folder."""
    modes = ("RGB", "L", "RGBA", "P")
    for c, label in enumerate(CLASSES):
        for i in range(per_class):
            ext = list(FORMATS)[i % 4]
            folder = root / label / ("deeper/still" if i % 3 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            mode = modes[i % 4] if FORMATS[ext] != "JPEG" else ("RGB", "L")[i % 2]
            image = cell_image(c, seed=100 * c + i, size=14 + (i % 4) * 2, mode=mode)
            (folder / f"{label.lower()}_{i:03d}{ext}").write_bytes(encoded(image, FORMATS[ext]))
    good = encoded(cell_image(0, 999, 32), "JPEG")
    (root / "BLA" / "broken.jpg").write_bytes(good[: len(good) // 2])
    (root / "LYM" / "notes.txt").write_text("not an image")
    (root / "EMPTY").mkdir()
    return root


def metadata_tree(root: Path, patients: int = 10, per_patient: int = 4) -> Path:
    """Images in arbitrary folders listed by metadata.csv (file_name,label,patient,bag_label)."""
    lines = ["file_name,label,patient,bag_label"]
    for p in range(patients):
        for i in range(per_patient):
            c = (p + i) % 2
            rel = f"slides/P{p:02d}/cell_{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cell_image(c, seed=10 * p + i).save(root / rel)
            lines.append(f"{rel},{CLASSES[c]},P{p:02d},{'AML' if p % 2 else 'control'}")
    lines.append("slides/missing.png,BLA,P00,control")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def arrow_rows(n_per_class: int = 12, bad_row: int | None = 3) -> dict:
    rows = {"image": [], "label": [], "patient": []}
    for c in range(2):
        for i in range(n_per_class):
            fmt = ("PNG", "JPEG")[i % 2]
            rows["image"].append({"bytes": encoded(cell_image(c, seed=50 * c + i), fmt), "path": None})
            rows["label"].append(c)
            rows["patient"].append(f"P{c}{i // 2}")
    if bad_row is not None:
        rows["image"][bad_row] = {"bytes": b"these bytes are no image", "path": None}
    return rows


def arrow_dataset(rows: dict):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["BLA", "LYM"]),
                                  "patient": datasets.Value("string")})
    return datasets.Dataset.from_dict(rows, features=features)


def result(out: Path, task: str, dataset: str) -> dict:
    return json.loads((out / "handcrafted" / task / f"{dataset}.json").read_text())


# -- image folders ------------------------------------------------------------------------------
def test_class_folder_tree_verify_lists_skips_and_the_empty_class(tmp_path, cli_json):
    class_folder_tree(tmp_path / "mycells")
    code, report = cli_json("data", "verify", f"folder:{tmp_path / 'mycells'}")
    assert code == 0 and report["dataset"] == "custom-mycells"
    assert report["classes"] == {label: 10 for label in CLASSES}
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert skipped["BLA/broken.jpg"].startswith(("truncated JPEG", "unreadable image"))
    assert skipped["LYM/notes.txt"].startswith("not an image file")
    assert "empty class folder" in skipped["EMPTY/"]
    assert any(w.startswith("EMPTY/") for w in report["warnings"])


def test_class_folder_tree_end_to_end_then_leaderboard(tmp_path, cli):
    root = class_folder_tree(tmp_path / "mycells")
    out = tmp_path / "results"
    code, stdout, _ = cli("run", "--encoder", "handcrafted", "--dataset", f"folder:{root}", "--task", "cell-probe",
                          "--task", "cell-knn", "--out", out, "--no-progress")
    assert code == 0, stdout
    probe = result(out, "cell-probe", "custom-mycells")
    assert probe["dataset_info"]["custom"] and probe["dataset_info"]["source"] == f"folder:{root}"
    assert probe["split"]["name"] == "cv5" and probe["labels"] == list(CLASSES)
    # cv5: every usable image is tested exactly once; the truncated one is not a record
    ids = probe["predictions"]["probe"]["id"]
    assert len(ids) == 30 == len(set(ids)) and "BLA/broken.jpg" not in ids
    assert "BLA/deeper/still/bla_000.jpg" in ids
    knn = result(out, "cell-knn", "custom-mycells")["predictions"]
    assert sorted(knn) == ["k1", "k20"] and sorted(knn["k1"]["id"]) == sorted(ids)
    site = tmp_path / "site"
    code, stdout, _ = cli("leaderboard", "build", "--submissions", tmp_path / "none", "--results", out, "--out", site,
                          "--no-figures")
    assert code == 0, stdout
    pages = sorted(p.name for p in (site / "tasks").glob("*.html") if "--reported-" not in p.name)  # runs' boards
    assert len(pages) == 2 and all("--custom-mycells--" in p for p in pages)
    assert "custom-mycells" in (site / "index.html").read_text()


def test_metadata_csv_with_patients_groups_the_split(tmp_path, cli, cli_json):
    root = metadata_tree(tmp_path / "ward")
    code, report = cli_json("data", "verify", f"folder:{root}")
    assert code == 0 and report["n_images"] == 40
    assert report["skipped"] == [{"path": "slides/missing.png", "reason": "listed in metadata.csv but not found"}]
    code, splits = cli_json("data", "splits", f"folder:{root}", "--split", "holdout-80-20")
    assert code == 0 and splits["patients_in_two_parts"] == 0 and splits["split"] == "holdout-80-20"
    out = tmp_path / "results"
    code, stdout, _ = cli("run", "--encoder", "handcrafted", "--dataset", f"folder:{root}", "--task", "cell-probe",
                          "--split", "holdout-80-20", "--out", out, "--no-progress")
    assert code == 0, stdout
    probe = result(out, "cell-probe", "custom-ward")
    assert probe["split"]["name"] == "holdout-80-20"
    assert probe["split"]["fingerprint"] == splits["fingerprint"]
    tested = {p.split("/")[1] for p in probe["predictions"]["probe"]["id"]}
    whole = {f"P{p:02d}" for p in range(10)}
    assert tested < whole  # the test part holds whole patients: every image of a tested patient
    ids = set(probe["predictions"]["probe"]["id"])
    assert all(f"slides/{p}/cell_{i}.png" in ids for p in tested for i in range(4))


def test_split_notes_report_a_class_smaller_than_the_folds(tmp_path, cli):
    root = class_folder_tree(tmp_path / "few", per_class=10)
    for path in sorted((root / "NEU").rglob("*.*"))[2:]:
        path.unlink()
    code, stdout, _ = cli("data", "splits", f"folder:{root}")
    assert code == 0
    assert "class 'NEU' has 2 image(s), fewer than the 5 parts: kept" in stdout


# -- arrow datasets -----------------------------------------------------------------------------
def test_arrow_dataset_by_hf_disk_and_by_hf_local_files(tmp_path, cli, cli_json):
    ds = arrow_dataset(arrow_rows())
    ds.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "parquet").mkdir()
    ds.to_parquet(str(tmp_path / "parquet" / "train.parquet"))
    code, report = cli_json("data", "verify", f"hf-disk:{tmp_path / 'saved'}")
    assert code == 0 and report["classes"] == {"BLA": 11, "LYM": 12}  # ClassLabel ints become names
    assert report["skipped"] == [{"path": "data-00000-of-00001/000003",
                                  "reason": "not an image (content is no known image format)"}]
    out = tmp_path / "results"
    for text, name in ((f"hf-disk:{tmp_path / 'saved'}", "custom-saved"), (f"hf:{tmp_path / 'parquet'}", "custom-parquet")):
        code, stdout, _ = cli("run", "--encoder", "handcrafted", "--dataset", text, "--task", "cell-probe",
                              "--out", out, "--no-progress", "--workers", "1")
        assert code == 0, stdout
        probe = result(out, "cell-probe", name)
        assert len(probe["predictions"]["probe"]["id"]) == 23
        assert probe["metrics"]["probe/balanced_accuracy"]["mean"] > 0.7
    code, stdout, _ = cli("leaderboard", "build", "--submissions", tmp_path / "none", "--results", out,
                          "--out", tmp_path / "site", "--no-figures")
    assert code == 0 and "2 results on 2 boards" in stdout


def test_arrow_images_embed_exactly_as_the_same_files(tmp_path, cli):
    """Decoding rows of arrow files (in a DataLoader worker) gives the embeddings of the same images as files."""
    rows = arrow_rows(n_per_class=6, bad_row=None)
    arrow_dataset(rows).save_to_disk(str(tmp_path / "saved"))
    for i, (cell, label) in enumerate(zip(rows["image"], rows["label"])):
        path = tmp_path / "files" / CLASSES[label] / f"{i:06d}.img.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(cell["bytes"])).save(path)  # PNG rows stay identical; JPEG rows decode to the same pixels
    for text, target in ((f"hf-disk:{tmp_path / 'saved'}", "arrow.npz"), (f"folder:{tmp_path / 'files'}", "files.npz")):
        code, stdout, _ = cli("extract", "--encoder", "handcrafted", "--dataset", text, "--export", tmp_path / target,
                              "--workers", "1", "--no-progress")
        assert code == 0, stdout
    arrow, files = np.load(tmp_path / "arrow.npz"), np.load(tmp_path / "files.npz")
    arrow_row = [int(p.rsplit("/", 1)[1]) for p in arrow["paths"]]
    file_row = [int(Path(p).name.split(".")[0]) for p in files["paths"]]
    np.testing.assert_array_equal(arrow["features"], files["features"][np.argsort(file_row)][arrow_row])


def test_parquet_and_folder_exports_round_trip_with_provenance(tmp_path, cli):
    import datasets

    from hemabench.embeddings.export import read_provenance

    root = metadata_tree(tmp_path / "ward")
    exported = {}
    for target in ("emb.npz", "emb.parquet", "emb-dir"):
        code, stdout, _ = cli("extract", "--encoder", "handcrafted", "--dataset", f"folder:{root}", "--split", "cv5",
                              "--export", tmp_path / target, "--no-progress")
        assert code == 0, stdout
        exported[target] = tmp_path / target
    npz = np.load(exported["emb.npz"])
    table = datasets.load_dataset("parquet", data_files=str(exported["emb.parquet"]), split="train",
                                  cache_dir=str(tmp_path / "hf-read"))
    saved = datasets.load_from_disk(str(exported["emb-dir"]))
    for ds in (table, saved):
        assert ds.features["embedding"].length == npz["features"].shape[1]
        np.testing.assert_array_equal(np.asarray(ds["embedding"], dtype=np.float32), npz["features"].astype(np.float32))
        assert ds["id"] == npz["paths"].tolist() and ds["label"] == npz["labels"].tolist()
        assert ds["part"] == npz["split"].tolist()
        assert ds["patient"][:4] == ["P00"] * 4
    for made_by in (read_provenance(exported["emb.parquet"]), read_provenance(exported["emb-dir"])):
        assert made_by["encoder"] == "handcrafted" and made_by["dataset"] == "custom-ward"
        assert made_by["split"]["fingerprint"] == str(npz["split_fingerprint"])


# -- bad input ----------------------------------------------------------------------------------
def cache_entries() -> list[str]:
    folder = Path(os.environ["HEMABENCH_CACHE"]) / "embeddings"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_missing_label_column_is_one_line_and_caches_nothing(tmp_path, cli):
    root = metadata_tree(tmp_path / "ward")
    (root / "metadata.csv").write_text((root / "metadata.csv").read_text().replace("file_name,label,", "file_name,cell_type,"))
    code, _, err = cli("run", "--encoder", "handcrafted", "--dataset", f"folder:{root}", "--task", "cell-probe",
                       "--out", tmp_path / "results", "--no-progress")
    assert code == 2 and err.count("\n") == 1
    assert f"{root / 'metadata.csv'}: no label column 'label'" in err and "--label-column" in err
    assert cache_entries() == [] and not (tmp_path / "results").exists()
    code, stdout, _ = cli("data", "verify", f"folder:{root}", "--label-column", "cell_type")
    assert code == 0 and "40 usable images" in stdout


def test_column_of_non_image_bytes_is_one_line(tmp_path, cli):
    rows = arrow_rows()
    rows["image"] = [{"bytes": f"row {i}".encode(), "path": None} for i in range(len(rows["image"]))]
    arrow_dataset(rows).save_to_disk(str(tmp_path / "saved"))
    code, _, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"hf-disk:{tmp_path / 'saved'}",
                       "--no-progress")
    assert code == 2 and err.count("\n") == 1
    assert "column 'image' holds no image" in err and "--image-column" in err
    assert cache_entries() == []


def test_unreadable_rows_are_skipped_listed_and_never_cached(tmp_path, cli, cli_json):
    arrow_dataset(arrow_rows()).save_to_disk(str(tmp_path / "saved"))
    code, stdout, _ = cli("extract", "--encoder", "handcrafted", "--dataset", f"hf-disk:{tmp_path / 'saved'}",
                          "--export", tmp_path / "emb.npz", "--no-progress")
    assert code == 0
    exported = np.load(tmp_path / "emb.npz")
    assert "data-00000-of-00001/000003" not in exported["paths"].tolist() and exported["valid"].all()
    index = json.loads((Path(os.environ["HEMABENCH_CACHE"]) / "embeddings" / cache_entries()[0] / "index.json").read_text())
    assert len(index["paths"]) == 23 and not index["failed"]


def test_offline_hub_name_is_one_clear_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "hemabench", "data", "verify", "hf:someone/blood-cells@main"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hemabench: error: hf:someone/blood-cells@main: cannot load")
    assert "hf-disk:PATH" in lines[0]


def test_unknown_prefix_and_hub_name_parsing():
    from hemabench.datasets.custom import custom_name
    from hemabench.datasets.hf import parse_hub_name

    assert parse_hub_name("owner/name@v1.0:cells") == ("owner/name", "v1.0", "cells")
    assert parse_hub_name("owner/name") == ("owner/name", None, None)
    assert custom_name("hf:owner/Blood Cells@main:cfg") == "custom-blood-cells-cfg"


# -- tasks declare needs ------------------------------------------------------------------------
def test_tasks_follow_what_datasets_provide(tmp_path):
    from hemabench.datasets import DATASETS, get_dataset
    from hemabench.datasets.matek_bm import ClassFolderDataset
    from hemabench.pipeline.suites import load_suite
    from hemabench.tasks import TASKS

    class NewCells(ClassFolderDataset):
        name, title, folder, domain, layout = "new-cells", "new", "new", "blood", "<CLASS>/<file>"
        classes = {"A": "a"}

    spec = NewCells()
    assert [t for t in TASKS.names() if TASKS.get(t).serves(spec)] == ["cell-knn", "cell-probe", "label-efficiency",
                                                                       "robustness"]
    DATASETS._items["new-cells"] = spec
    try:  # a registered dataset joins every task it can serve, with no task edit
        suite = load_suite("full")
        assert ("cell-probe", "new-cells") in suite.plan(datasets=["new-cells"])
        assert ("aml-mil", "new-cells") not in suite.plan(datasets=["new-cells"])
    finally:
        del DATASETS._items["new-cells"]
    with_bags = get_dataset(f"folder:{metadata_tree(tmp_path / 'bags')}")
    assert TASKS.get("aml-mil").serves(with_bags) and TASKS.get("aml-mil").split_for(with_bags.name) == "patient-cv5"
    plain = get_dataset(f"folder:{class_folder_tree(tmp_path / 'plain', per_class=2)}")
    assert not TASKS.get("aml-mil").serves(plain) and TASKS.get("cell-probe").serves(plain)
    assert TASKS.get("bm-to-blood").needs.missing(plain) == ["a source dataset and class mapping"]


def test_a_task_the_data_cannot_serve_says_what_is_missing(tmp_path, cli):
    root = class_folder_tree(tmp_path / "plain", per_class=2)
    code, _, err = cli("run", "--encoder", "handcrafted", "--task", "aml-mil", "--dataset", f"folder:{root}",
                       "--out", tmp_path / "results")
    assert code == 2 and err.count("\n") == 1
    assert "custom-plain lacks bag-labels, patients for aml-mil" in err


@pytest.mark.slow
def test_demo_suite_on_own_data_runs_bag_and_label_efficiency_tasks(tmp_path, cli):
    root = metadata_tree(tmp_path / "ward")
    out = tmp_path / "results"
    code, stdout, _ = cli("run", "--suite", "demo", "--encoder", "handcrafted", "--dataset", f"folder:{root}",
                          "--out", out, "--no-progress")
    assert code == 0, stdout
    for task in ("cell-probe", "cell-knn", "label-efficiency", "aml-mil", "robustness"):
        assert result(out, task, "custom-ward")["dataset"] == "custom-ward"
    mil = result(out, "aml-mil", "custom-ward")
    assert mil["split"]["name"] == "patient-cv5" and sorted(mil["labels"]) == ["AML", "control"]
    assert sorted(set(mil["predictions"]["amil"]["id"])) == [f"P{p:02d}" for p in range(10)]
    code, stdout, _ = cli("leaderboard", "build", "--submissions", tmp_path / "none", "--results", out,
                          "--out", tmp_path / "site", "--data-root", tmp_path)
    assert code == 0 and "5 results on 5 boards" in stdout
    assert len(list((tmp_path / "site" / "thumbs").glob("*.png"))) > 0  # attention cells, read from the user's folder
