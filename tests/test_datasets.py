"""Adapters on fixture trees that copy the real layouts, defects included."""

from __future__ import annotations

import io

import numpy as np
import pytest
import trees
from PIL import Image

from hemabench.datasets import DATASETS, load_dataset
from hemabench.errors import DatasetNotFound
from hemabench.images.check import check_image


def skipped_reasons(discovery) -> dict[str, str]:
    return {s.path: s.reason for s in discovery.skipped}


def test_every_real_dataset_and_its_twin_is_registered():
    real = {"matek-bm", "matek-blood", "acevedo", "raabin", "aml-hehr", "breakhis"}
    assert real | {"synth-bm", "synth-blood", "synth-aml", "synth-breakhis"} <= set(DATASETS.names())


def test_matek_bm_chunked_folders_case_and_defects(tmp_path):
    trees.matek_bm(tmp_path)
    found = load_dataset("matek-bm", root=tmp_path)
    counts = found.records["label"].value_counts().to_dict()
    assert counts == {"ART": 5, "NGS": 5, "ABE": 3, "BLA": 1}
    assert "ART/1001-2000/ART_01001.jpg" in set(found.records["path"])  # recursive, chunked
    assert "BLA/BLA_00001.JPG" in set(found.records["path"])  # upper-case extension
    assert skipped_reasons(found) == {"NGS/0001-1000/NGS_00006.jpg": "truncated JPEG (no end marker)"}
    assert found.records["patient"].isna().all() and (found.records["domain"] == "bone-marrow").all()


def test_matek_blood_tiff_extensions_and_non_images(tmp_path):
    trees.matek_blood(tmp_path)
    found = load_dataset("matek-blood", data_root=tmp_path)
    assert found.records["label"].value_counts().to_dict() == {"NGS": 6, "LYT": 4, "MYO": 3, "BAS": 2, "MON": 1}
    reasons = skipped_reasons(found)
    assert reasons["LYT/Thumbs.db"].startswith("not an image file")
    assert reasons["MON/MON_0002.tiff"].startswith("truncated TIFF")


def test_acevedo_fine_labels_fake_jpg_and_misfiled_prefix(tmp_path):
    trees.acevedo(tmp_path)
    found = load_dataset("acevedo", root=tmp_path / "PBC_dataset_normal_DIB")  # the folder itself
    records = found.records.set_index("path")
    assert records.loc["ig/PMY_1.jpg", "label"] == "MYC" and records.loc["ig/PMY_1.jpg", "fine_label"] == "PMY"
    assert records.loc["neutrophil/BNE_2.jpg", "label"] == "NGS"
    assert records.loc["platelet/PLATELET_1.jpg", "fine_label"] == "PLATELET"
    assert len(records) == sum(len(v) for v in trees.ACEVEDO_FILES.values())
    reasons = skipped_reasons(found)
    assert reasons["neutrophil/._SNE_9.jpg"].startswith("not an image")
    assert reasons["ig/SNE_77.jpg"] == "file name says 'neutrophil' but its folder says 'ig'"


def test_raabin_official_split_under_another_folder_name(tmp_path):
    trees.raabin(tmp_path, name="my_raabin_copy")
    found = load_dataset("raabin", root=tmp_path / "my_raabin_copy")
    by_split = found.records.groupby("official_split")["label"].value_counts().unstack(fill_value=0)
    assert by_split.loc["Train", "NGS"] == 4 and by_split.loc["TestA", "BAS"] == 1
    assert set(found.records["label"]) == {"BAS", "EOS", "LYT", "MON", "NGS"}


def test_aml_hehr_patients_and_old_style_names(tmp_path):
    trees.aml_hehr(tmp_path)
    found = load_dataset("aml-hehr", root=tmp_path)
    records = found.records
    assert records["patient"].nunique() == 26
    assert set(records.loc[records["patient"] == "OLD01", "path"]) == {"NPM1/OLD01/000.TIF", "NPM1/OLD01/001.TIF"}
    assert (records.groupby("patient")["label"].nunique() == 1).all()


def test_breakhis_names_parsed_and_checked_against_folders(tmp_path):
    trees.breakhis(tmp_path)
    for root in (tmp_path, tmp_path / "BreaKHis_v1", tmp_path / "BreaKHis_v1" / "histology_slides" / "breast"):
        found = load_dataset("breakhis", root=root)
        assert found.root == tmp_path / "BreaKHis_v1" / "histology_slides" / "breast"  # same paths however pointed
    row = found.records.set_index("path").loc[
        "benign/SOB/adenosis/SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png"]
    assert (row["label"], row["fine_label"], row["patient"], row["magnification"]) == ("benign", "A", "14-22549AB", 40)
    assert found.records["magnification"].value_counts().to_dict() == {40: 18, 100: 18, 200: 18, 400: 18}
    (wrong,) = found.skipped
    assert wrong.reason == "file name says magnification '100X' but its folder says '40X'"


@pytest.mark.parametrize("name", ["SOB_B_A-14-22549AB-40.png", "SOB_X_A-14-1-40-001.png", "SOB_B_A-14-1-50-001.png"])
def test_breakhis_bad_names_are_reported(name):
    from hemabench.datasets.base import Skip
    from hemabench.datasets.breakhis import parse_breakhis_name

    with pytest.raises(Skip, match="file name"):
        parse_breakhis_name(name)


def test_data_root_and_environment_variable(tmp_path, monkeypatch):
    trees.raabin(tmp_path)
    assert len(load_dataset("raabin", data_root=tmp_path).records) == 20
    monkeypatch.setenv("HEMABENCH_DATA", str(tmp_path))
    assert len(load_dataset("raabin").records) == 20


def test_missing_root_says_where_it_looked_and_what_layout(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("matek-bm", data_root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "BM_cytomorphology_data") in message and "does not exist" in message
    assert "BM_cytomorphology_data/<CLASS>/" in message and "--data-root" in message


def test_folder_with_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "BM_cytomorphology_data" / "XYZ").mkdir(parents=True)
    (tmp_path / "BM_cytomorphology_data" / "XYZ" / "XYZ_1.jpg").write_bytes(trees.image_bytes("JPEG"))
    with pytest.raises(DatasetNotFound, match="has no usable image"):
        load_dataset("matek-bm", root=tmp_path)


def test_full_check_decodes_what_the_header_check_cannot_see(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(16)  # corrupt the compressed pixels, keep the IEND marker
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    assert check_image(path) is None
    assert check_image(path, full=True).startswith("unreadable image")
    assert check_image(tmp_path / "missing.png").startswith("cannot stat")
