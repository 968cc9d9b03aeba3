"""Issue 30 items 1-3 (and the own-data half of issue 23 item 14): nothing of the user's is lost
or silently stale. Each test failed before its fix; 1-3 check that the user's files and the
earlier results are byte-identical after the run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_custom_data import arrow_dataset, arrow_rows, cell_image


@pytest.fixture(autouse=True)
def fresh_custom(tmp_path, monkeypatch):
    import datasets

    from hemabench.datasets.resolve import forget_custom

    forget_custom()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setenv("HEMABENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HEMABENCH_CACHE_KEY", raising=False)
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()
    forget_custom()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256 of its bytes)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def bmp_tree(root: Path, classes=("a", "b"), per_class: int = 6) -> Path:
    for c, label in enumerate(classes):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cell_image(c, seed=10 * c + i, size=16).save(root / label / f"{i}.bmp")
    return root


# -- #30.1: an export never removes what it did not write, never writes into its input ----------
def test_export_into_its_own_hf_disk_input_is_refused_and_loses_nothing(tmp_path, cli):
    data = tmp_path / "D"
    arrow_dataset(arrow_rows(n_per_class=4, bad_row=None)).save_to_disk(str(data))
    (data / "NOTES.txt").write_text("my notes")
    before = snapshot(data)
    code, _, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"hf-disk:{data}", "--export", data,
                       "--workers", "0", "--no-progress")
    assert code == 2 and "an export never writes into its own input" in err and err.count("\n") == 1
    assert snapshot(data) == before
    inner = data / "emb.npz"
    code, _, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"hf-disk:{data}", "--export", inner,
                       "--workers", "0", "--no-progress")
    assert code == 2 and "lies inside (or holds) the input data" in err and snapshot(data) == before


def test_export_never_replaces_a_saved_dataset_it_did_not_write(tmp_path, cli):
    data, other = bmp_tree(tmp_path / "cells"), tmp_path / "other"
    arrow_dataset(arrow_rows(n_per_class=2, bad_row=None)).save_to_disk(str(other))  # has dataset_info.json
    (other / "NOTES.txt").write_text("keep")
    before = snapshot(other)
    code, _, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--export", other,
                       "--workers", "0", "--no-progress")
    assert code == 2 and "holds files an export does not write (NOTES.txt)" in err and snapshot(other) == before
    (other / "NOTES.txt").unlink()
    code, _, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--export", other,
                       "--workers", "0", "--no-progress")
    assert code == 2 and "is not a hemabench export" in err and snapshot(other) == {k: v for k, v in before.items()
                                                                                  if k != "NOTES.txt"}


def test_export_replaces_its_own_earlier_export_and_leaves_nothing_beside_it(tmp_path, cli):
    import datasets

    data, target = bmp_tree(tmp_path / "cells"), tmp_path / "emb"
    for _ in range(2):
        code, out, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--export", target,
                             "--workers", "0", "--no-progress")
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "hf-cache") == ["cache", "cells", "emb"]
    assert len(datasets.load_from_disk(str(target))) == 12


# -- #30.2: a changed image never gets an old embedding ------------------------------------------
def extract(cli, data: Path, target: Path) -> tuple[str, np.ndarray]:
    code, out, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--export", target,
                         "--workers", "0", "--no-progress")
    assert code == 0, err
    key = out.split("cache key ")[1].split(")")[0]
    return key, np.load(target)["features"].astype(np.float64)


def black_rewrite(path: Path, keep_mtime: bool = False) -> None:
    """The same file name and size, black pixels; the modification time moves on (or is put back)."""
    info = path.stat()
    size = Image.open(path).size
    Image.new("RGB", size).save(path)
    assert path.stat().st_size == info.st_size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns if keep_mtime else info.st_mtime_ns + 10**9))


def copy_tree(data: Path, copy: Path) -> Path:
    for path in data.rglob("*.bmp"):
        target = copy / path.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return copy


def test_an_image_rewritten_in_place_is_embedded_again(tmp_path, cli):
    data = bmp_tree(tmp_path / "cells")
    key, first = extract(cli, data, tmp_path / "1.npz")
    black_rewrite(data / "a" / "0.bmp")
    key2, second = extract(cli, data, tmp_path / "2.npz")
    assert key2 != key
    fresh = extract(cli, copy_tree(data, tmp_path / "copy"), tmp_path / "3.npz")[1]  # computed anew elsewhere
    assert np.array_equal(second, fresh) and not np.allclose(second[0], first[0])
    assert np.array_equal(second[1:], first[1:])


def test_content_keys_cover_a_rewrite_that_keeps_the_modification_time(tmp_path, cli, monkeypatch):
    data = bmp_tree(tmp_path / "cells")
    stat_key, stat_first = extract(cli, data, tmp_path / "1.npz")
    monkeypatch.setenv("HEMABENCH_CACHE_KEY", "content")
    key, first = extract(cli, data, tmp_path / "2.npz")
    assert key != stat_key and np.array_equal(first, stat_first)  # the key scheme never changes the numbers
    black_rewrite(data / "a" / "0.bmp", keep_mtime=True)
    key2, second = extract(cli, data, tmp_path / "3.npz")
    assert key2 != key and not np.allclose(second[0], first[0])
    monkeypatch.setenv("HEMABENCH_CACHE_KEY", "sha1")
    code, _, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--no-progress")
    assert code == 2 and "HEMABENCH_CACHE_KEY='sha1': one of stat, content" in err


def test_registered_datasets_key_on_modification_time_too(tmp_path):
    import trees

    from hemabench.datasets import DATASETS

    base = trees.matek_bm(tmp_path / "data")
    discovery = DATASETS.get("matek-bm").discover(base)
    before = discovery.image_source().digest(discovery.records["path"])
    path = base / discovery.records["path"].iloc[0]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert discovery.image_source().digest(discovery.records["path"]) != before


# -- #30.3: two folders with the same name never share results silently --------------------------
def test_a_second_folder_of_the_same_name_never_replaces_the_first_results(tmp_path, cli):
    from hemabench.datasets.resolve import forget_custom

    first, second = bmp_tree(tmp_path / "x1" / "smears"), bmp_tree(tmp_path / "x2" / "smears", per_class=8)
    out = tmp_path / "results"
    args = ("--encoder", "handcrafted", "--task", "cell-probe", "--out", out, "--no-progress", "--workers", "0")
    code, stdout, err = cli("run", "--dataset", f"folder:{first}", *args)
    assert code == 0, err
    before = snapshot(out)
    forget_custom()  # as a second command would
    code, stdout, err = cli("run", "--dataset", f"folder:{second}", *args)
    assert f"holds the results of folder:{first}, also named custom-smears: nothing replaced" in stdout + err
    assert snapshot(out) == before
    forget_custom()
    code, stdout, err = cli("run", "--dataset", f"folder:{second}", *args, "--overwrite")
    assert code == 0, err
    result = json.loads((out / "handcrafted" / "cell-probe" / "custom-smears.json").read_text())
    assert result["dataset_info"]["source"] == f"folder:{second}" and len(result["predictions"]["probe"]["id"]) == 16


# -- #23.14, #30.4, 8, 11, 12: own data that crashed or was silently wrong -------------------------
def test_too_few_classes_is_one_line_before_any_extraction(tmp_path, cli):
    for name, classes, per_class, words in (("one", ("a",), 6, "has one class ('a', 6 images)"),
                                            ("single", ("a", "b", "c"), 1, "has 3 classes but 0 with two or more")):
        data = bmp_tree(tmp_path / name, classes, per_class)
        code, out, err = cli("run", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--out",
                             tmp_path / "results", "--no-progress", "--workers", "0")
        assert code == 2 and "Traceback" not in out + err
        assert f"cannot run: folder:{data} {words}" in out and "0 images embedded" in out


def test_odd_file_names_and_linked_class_folders_are_listed_and_the_hint_works(tmp_path, cli, cli_json):
    data = bmp_tree(tmp_path / "odd")
    (data / "a" / os.fsdecode(b"caf\xe9.bmp")).write_bytes((data / "a" / "0.bmp").read_bytes())
    elsewhere = bmp_tree(tmp_path / "elsewhere", ("c",))
    (data / "c").symlink_to(elsewhere / "c")
    code, report = cli_json("data", "verify", f"folder:{data}")
    assert code == 0 and report["classes"] == {"a": 6, "b": 6}
    assert {s["path"]: s["reason"] for s in report["skipped"]} == {
        "a/caf\\xe9.bmp": "file name is not valid UTF-8",
        "c": "symbolic link to a folder: not followed (copy or move the folder itself here)"}
    code, out, err = cli("extract", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--workers", "0",
                         "--no-progress")
    assert code == 0, err
    hint = out.split("(again: `")[1].split("`)")[0]
    listing = Path(out.split("full list: ")[1].split(" (again")[0])
    assert hint == f"hemabench data verify folder:{data}"
    assert listing.read_text().splitlines()[1:] == ["a/caf\\xe9.bmp\tfile name is not valid UTF-8",
                                                    "c\tsymbolic link to a folder: not followed (copy or move the "
                                                    "folder itself here)"]
    assert cli(*hint.split()[1:])[0] == 0  # the command named works


def test_patient_cv5_without_bag_labels_is_one_line(tmp_path, cli):
    data = bmp_tree(tmp_path / "cells")
    code, _, err = cli("data", "splits", f"folder:{data}", "--split", "patient-cv5")
    assert code == 2 and err.count("\n") == 1
    assert "split patient-cv5@v1 is stratified by bag_label, which 12 of 12 images lack" in err


def wide_images(mode: str) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if mode == "F":
        return [rng.random((16, 16), dtype=np.float32) * (0.3 + 0.5 * c) for c in range(2) for _ in range(4)]
    return [(rng.integers(0, 2**16, (16, 16)) // (1 + 2 * c)).astype(np.uint16) for c in range(2) for _ in range(4)]


@pytest.mark.parametrize("mode, ext, scale", [("I;16", "png", 255 / 65535), ("I;16", "tif", 255 / 65535),
                                              ("F", "tif", 255.0)])
def test_high_bit_depth_images_embed_as_their_8_bit_reductions(tmp_path, cli, mode, ext, scale):
    wide, narrow = tmp_path / "wide", tmp_path / "narrow"
    for i, values in enumerate(wide_images(mode)):
        for folder, image in ((wide, Image.fromarray(values)),
                              (narrow, Image.fromarray(np.rint(values.astype(np.float64) * scale).astype(np.uint8)))):
            (folder / "ab"[i // 4]).mkdir(parents=True, exist_ok=True)
            image.save(folder / "ab"[i // 4] / f"{i}.{ext}")
    assert Image.open(wide / "a" / f"0.{ext}").mode == mode
    features = {}
    for folder in (wide, narrow):
        features[folder.name] = extract(cli, folder, tmp_path / f"{folder.name}.npz")[1]
    np.testing.assert_array_equal(features["wide"], features["narrow"])
    assert np.ptp(features["wide"], axis=0).max() > 0  # not the blank images convert("RGB") made


def test_float_image_of_unknown_scale_is_skipped_naming_why(tmp_path, cli_json):
    data = bmp_tree(tmp_path / "cells")
    Image.fromarray(np.full((8, 8), 1000.0, dtype=np.float32)).save(data / "a" / "hot.tif")
    code, report = cli_json("data", "verify", f"folder:{data}")
    assert code == 0 and report["classes"] == {"a": 6, "b": 6}
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert reasons["a/hot.tif"] == ("unreadable image: float image with values up to 1000, beyond [0, 1] and "
                                    "[0, 255]: cannot tell its scale; save it as 8 or 16 bits")


def test_big_metadata_sheet_is_read_by_column_and_its_skips_summarised(tmp_path, cli):
    import pandas as pd

    data = bmp_tree(tmp_path / "ward")
    listed = [f"{label}/{i}.bmp" for label in "ab" for i in range(6)]
    rows = listed + [f"gone/{i}.png" for i in range(20_000)] + ["../escape.png", "a/0.bmp", "b/0.bmp"]
    labels = ["a"] * 6 + ["b"] * 6 + ["x"] * 20_000 + ["a", "a", ""]
    pd.DataFrame({"file_name": rows, "label": labels, "patient": [None] * len(rows)}).to_parquet(data / "metadata.parquet")
    code, out, err = cli("data", "verify", f"folder:{data}")
    assert code == 0 and "12 usable images" in out
    assert len(out.splitlines()) < 40  # not 20,000 lines
    assert "  20000 x listed in metadata.parquet but not found" in out
    assert "  1 x not a plain relative path inside the dataset folder" in out and "  1 x listed twice" in out
    assert "  1 x no label" in out
    listing = Path(out.split("full list: ")[1].split(" (again")[0])
    assert len(listing.read_text().splitlines()) == 1 + 20_003


def test_cache_rm_takes_folder_names_and_hints_when_nothing_matched(tmp_path, cli):
    data = bmp_tree(tmp_path / "cells")
    extract(cli, data, tmp_path / "e.npz")
    code, out, _ = cli("cache", "rm", "--dataset", f"folder:{tmp_path / 'nothing'}")
    assert code == 0 and "removed 0 entries" in out and "`hemabench cache ls` lists the entries" in out
    code, out, _ = cli("cache", "rm", "--dataset", f"folder:{data}")
    assert code == 0 and "removed 1 entry" in out


def test_submit_refuses_own_data_results_saying_how_to_submit(tmp_path, cli):
    data = bmp_tree(tmp_path / "cells")
    out = tmp_path / "results"
    assert cli("run", "--encoder", "handcrafted", "--dataset", f"folder:{data}", "--task", "cell-probe", "--out", out,
               "--no-progress", "--workers", "0")[0] == 0
    code, _, err = cli("submit", "--encoder", "handcrafted", "--results", out, "--submissions", tmp_path / "subs")
    assert code == 2 and err.count("\n") == 1
    assert "custom-cells is your own data (folder:, hf:, hf-disk:): own-data results are not submittable" in err
    assert "register the dataset" in err and not (tmp_path / "subs").exists()


# -- one folder scan: folder: data walks its tree as a registered dataset does --------------------
def _refusing_walk(monkeypatch, refused: str):
    """os.walk whose error callback gets the folder named ``refused`` (what an unreadable folder gives; tests
    run as root, which reads every folder)."""
    from hemabench.datasets import base

    real_walk = os.walk

    def walk(top, onerror=None, **kwargs):
        for dirpath, dirnames, filenames in real_walk(top, onerror=onerror, **kwargs):
            if Path(dirpath).name == refused:
                onerror(PermissionError(13, "Permission denied", dirpath))
                dirnames[:] = []
                continue
            yield dirpath, dirnames, filenames

    monkeypatch.setattr(base.os, "walk", walk)


def test_folder_data_lists_an_unreadable_class_folder_once_and_a_non_utf8_one_escaped(tmp_path, monkeypatch, cli_json):
    data = bmp_tree(tmp_path / "cells", ("a", "b", "c"))
    odd = data / os.fsdecode(b"d\xe9")
    odd.mkdir()
    (odd / "0.bmp").write_bytes((data / "a" / "0.bmp").read_bytes())
    _refusing_walk(monkeypatch, "c")
    code, report = cli_json("data", "verify", f"folder:{data}")
    assert code == 0 and report["classes"] == {"a": 6, "b": 6}
    assert sorted((s["path"], s["reason"]) for s in report["skipped"]) == [
        ("c", "folder cannot be read (Permission denied)"),  # once: not also an "empty class folder"
        ("d\\xe9/", "empty class folder (no usable image): the class is left out"),
        ("d\\xe9/0.bmp", "file name is not valid UTF-8")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable folders")
def test_folder_data_with_a_class_folder_without_permissions(tmp_path, cli_json):
    data = bmp_tree(tmp_path / "cells", ("a", "b", "c"))
    (data / "c").chmod(0)
    try:
        code, report = cli_json("data", "verify", f"folder:{data}")
    finally:
        (data / "c").chmod(0o700)
    assert code == 0 and report["classes"] == {"a": 6, "b": 6}
    assert [s["path"] for s in report["skipped"]] == ["c"] and report["skipped"][0]["reason"].startswith(
        "folder cannot be read")


def test_folder_data_whose_folder_cannot_be_read_is_one_line(tmp_path, monkeypatch, cli):
    """The class-folder listing once re-read the root with iterdir: an unreadable root was a traceback."""
    data = bmp_tree(tmp_path / "cells")
    _refusing_walk(monkeypatch, "cells")
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    code, out, err = cli("data", "verify", f"folder:{data}")
    assert code != 0 and "Traceback" not in err
    assert f"folder:{data}: no usable image under {data} (1 files skipped; first: {data}: folder cannot be read " \
           "(Permission denied))" in err
