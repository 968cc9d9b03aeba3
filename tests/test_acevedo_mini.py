"""acevedo-mini: the 200 real Acevedo cells shipped inside the package, read where they are installed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import hemabench
from hemabench.datasets import DATASETS, find_root, load_dataset
from hemabench.datasets.records import make_records
from hemabench.splits import MaterialisedSplit, SplitRule, get_rule
from hemabench.splits.fingerprints import registered

PACKAGE = Path(hemabench.__file__).resolve().parent
SAMPLE = PACKAGE / "data" / "acevedo_mini"
IMAGES = SAMPLE / "PBC_dataset_normal_DIB"
FOLDERS = ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet")
TITLE = "200-cell sample of Acevedo et al. 2020 (CC BY 4.0)"
# The registered cv5 split of the bundled sample, measured once (fixed data: any change to the files
# or the rule shows here): its fingerprint, and per fold the sha256 over its sorted test paths.
REGISTERED_FINGERPRINT = "19f57959bc49dafbf4cdb2c258b502a7c1891ca3b9c0b884b28a1864ef5357e2"
REGISTERED_TEST_SHA256 = {
    "fold0": "eb979b29aefd333f40dc959ef0c624ba63008b98d38703f9b8130215649bf3d2",
    "fold1": "c0295528f400d722532880a2588f9ab29509b46552a9b10b28ade6be70d1c074",
    "fold2": "9ceb5c37ab16ccc165764109560b56bb6d88672a477223991095b18ac8b3d5eb",
    "fold3": "13e9b464e00c1a7e120e51ea46db3d2ffdf2aed31918f103de71451b70e45bf8",
    "fold4": "c1589d10957f369b147409d5d5f0c43ab312a998dd273c6e78d10ada484d99e6",
}


def bundled_files() -> list[Path]:
    return sorted(IMAGES.rglob("*.jpg"))


def test_found_inside_the_package_with_no_data_root():
    assert "HEMABENCH_DATA" not in os.environ  # conftest removes it: nothing points at a data folder
    spec = DATASETS.get("acevedo-mini")
    assert spec.embedded and not spec.synthetic
    assert find_root(spec) == IMAGES
    assert len(bundled_files()) == 200 and all(f.stat().st_size < 2 * 2**20 for f in bundled_files())
    licence = (SAMPLE / "LICENSE").read_text()
    assert "CC BY 4.0" in licence and "doi:10.1016/j.dib.2020.105474" in licence
    assert spec.title == TITLE


def test_adapter_counts_and_fine_labels_match_the_file_names():
    found = load_dataset("acevedo-mini")
    assert found.skipped == [] and len(found.records) == 200
    by_path = found.records.set_index("path")
    for file in bundled_files():  # independent reading: class folder and the file-name prefix
        rel = file.relative_to(IMAGES).as_posix()
        assert by_path.loc[rel, "fine_label"] == file.name.split("_")[0]
    assert set(found.records["path"].str.split("/").str[0]) == set(FOLDERS)
    assert found.records["label"].value_counts().to_dict() == dict.fromkeys(
        ["BAS", "EOS", "EBO", "MYC", "LYT", "MON", "NGS", "PLA"], 25)
    assert found.records["fine_label"].value_counts().to_dict() == DATASETS.get("acevedo-mini").expected_fine
    assert Counter(f.name.split("_")[0] for f in (IMAGES / "ig").iterdir()) == {"MMY": 12, "MY": 9, "PMY": 3, "IG": 1}
    assert found.records.loc[found.records["fine_label"] == "BNE", "label"].eq("NGS").all()


def test_every_bundled_image_decodes_fully():
    for file in bundled_files():
        with Image.open(file) as image:
            assert image.format == "JPEG", file
            image.load()  # a full decode: raises on a truncated or corrupt file
            assert image.mode == "RGB" and 300 <= min(image.size) <= max(image.size) <= 400, file
    assert load_dataset("acevedo-mini", full_check=True).skipped == []


def test_data_verify_is_silent(cli):
    code, out, err = cli("data", "verify", "acevedo-mini", "--full-check")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == f"acevedo-mini: 200 usable images under {IMAGES}"
    assert "warning" not in out.lower() and "skipped" not in out


def test_data_verify_json_has_no_differences(cli_json):
    code, report = cli_json("data", "verify", "acevedo-mini")
    assert code == 0 and report["warnings"] == [] and report["differences"] == [] and report["n_images"] == 200


def test_registered_split_fingerprint_and_test_sets():
    spec = DATASETS.get("acevedo-mini")
    rule = get_rule("acevedo-mini")
    assert (rule.name, rule.kind, rule.k, rule.seed, rule.balanced) == ("cv5", "kfold", 5, 0, True)
    split = MaterialisedSplit.build("acevedo-mini", rule, load_dataset("acevedo-mini").records)
    entry = registered("acevedo-mini", rule.name, rule.version)  # benchmarks/fingerprints.yaml
    assert split.fingerprint == entry["fingerprint"] == REGISTERED_FINGERPRINT
    table = split.assignment
    for fold in rule.parts():
        test = table[table["part"] == fold]
        ids = "".join(f"{p}\n" for p in sorted(test["path"]))
        assert hashlib.sha256(ids.encode()).hexdigest() == REGISTERED_TEST_SHA256[fold] == \
            entry["tests"][fold]["records"]["ids"]
        assert test["label"].value_counts().to_dict() == dict.fromkeys(spec.classes, 5) == \
            entry["tests"][fold]["records"]["counts"]["label"]
    for rotation in rule.rotations():  # 20 training cells of every class in every fold
        train = table[table["part"].isin(rotation["train"])]
        assert set(train["label"].value_counts()) == {20}


def test_balanced_rule_gives_exact_shares_and_still_depends_on_the_seed():
    rows = [{"domain": "x", "label": c, "path": f"{c}/{i}.png"} for c in "ABC" for i in range(23)]
    records = make_records(rows)
    balanced = SplitRule(name="cv5", kind="kfold", k=5, seed=0, balanced=True)
    parts = balanced.assign(records)
    counts = pd.crosstab(records["label"], parts)
    assert counts.to_numpy().min() == 4 and counts.to_numpy().max() == 5  # 23 = 5+5+5+4+4 in every class
    assert (counts.sum(axis=1) == 23).all()
    other_seed = SplitRule(name="cv5", kind="kfold", k=5, seed=1, balanced=True).assign(records)
    assert (other_seed != parts).any()
    loose = SplitRule(name="cv5", kind="kfold", k=5, seed=0).assign(records)
    assert pd.crosstab(records["label"], loose).to_numpy().max() > 5  # in expectation only, without balanced
    holdout = SplitRule(name="h", kind="holdout", seed=0, fractions={"train": 0.8, "test": 0.2}, balanced=True)
    assert pd.crosstab(records["label"], holdout.assign(records))["test"].tolist() == [5, 5, 5]


@pytest.mark.parametrize("name", ["handcrafted", "resnet18-random"])
def test_extraction_with_each_offline_encoder(name, tmp_path):
    from hemabench.embeddings import extract_embeddings
    from hemabench.encoders import load_encoder

    found = load_dataset("acevedo-mini")
    subset = found.records.groupby("label").head(2).reset_index(drop=True)  # 16 real cells, 2 per class
    encoder = load_encoder(name)
    embeddings, _ = extract_embeddings(encoder, found.root, subset, dataset="acevedo-mini", cache_base=tmp_path,
                                       progress=False, workers=0, device="cpu", batch_size=8)
    features = np.asarray(embeddings.features, dtype=np.float32)
    assert features.shape == (16, encoder.spec.embed_dim) and embeddings.valid.all() and np.isfinite(features).all()
    assert len({row.tobytes() for row in features}) == 16  # every cell embeds differently
    with torch.no_grad():  # the first cell by hand: decode, the encoder's transform, one forward pass
        with Image.open(found.root / subset["path"][0]) as image:
            direct = encoder.model(encoder.transform(image.convert("RGB"))[None].float()).numpy()[0]
    np.testing.assert_allclose(features[0], direct, rtol=2e-2, atol=2e-2 * np.abs(direct).max())


def test_demo_suite_plans_the_cell_tasks_and_full_leaves_the_sample_out():
    from hemabench.pipeline.suites import load_suite

    demo = load_suite("demo")
    assert {t for t, d in demo.plan() if d == "acevedo-mini"} == {"cell-probe", "cell-knn", "label-efficiency", "robustness"}
    assert demo.dataset_task_params["acevedo-mini"]["label-efficiency"]["n_grid"] == [1, 5, 10]
    assert "acevedo-mini" not in load_suite("full").datasets  # full = datasets under a data root


def test_reproducible_in_ci():
    from hemabench.results import Result
    from hemabench.submissions.check import reproducible

    result = {"task": "cell-probe", "task_version": 2, "dataset": "acevedo-mini", "encoder": {"name": "handcrafted"},
              "main_metric": "probe/balanced_accuracy", "metrics": {"probe/balanced_accuracy": {}}}
    assert reproducible(Result.from_dict(result)) == ""
    assert reproducible(Result.from_dict({**result, "encoder": {"name": "efficientnet-lite0"}})) == ""  # a pip package
    assert reproducible(Result.from_dict({**result, "encoder": {"name": "dinobloom-b"}})) == \
        "encoder needs downloaded weights"
    assert reproducible(Result.from_dict({**result, "dataset": "acevedo"})).startswith("dataset is not embedded")


@pytest.fixture(scope="module")
def demo_label_efficiency(tmp_path_factory):
    """The demo's label-efficiency on acevedo-mini with the handcrafted encoder, run once."""
    from hemabench.cli import main

    out = tmp_path_factory.mktemp("r")
    assert main(["run", "--suite", "demo", "--encoder", "handcrafted", "--task", "label-efficiency",
                 "--dataset", "acevedo-mini", "--out", str(out), "--no-progress"]) == 0
    return out, json.loads((out / "handcrafted" / "label-efficiency" / "acevedo-mini.json").read_text())


def test_label_efficiency_records_and_uses_the_cut_grid(demo_label_efficiency):
    _, result = demo_label_efficiency
    params = result["task_metadata"]["params"]
    assert params["n_grid"] == [1, 5, 10] and params["repetitions"] == 10
    ns = {int(v.split("=")[1]) for v in result["predictions"] if "/rep" not in v}  # the sweep's variants
    assert ns == {1, 5, 10}  # every recorded grid value was computed, and nothing else
    recorded = {v for v in result["predictions"] if "/rep" in v}  # calibration: one repetition at the largest n
    assert recorded == {"svm/n=10/rep000", "lr/n=10/rep000"} and params["calibration"]["n"] == 10
    assert result["extra"]["effective_n"]["10"] == dict.fromkeys(result["labels"], 10)
    assert (result["extra"]["n_train"], result["extra"]["n_test"]) == (160, 40)
    assert result["task_metadata"]["detail_variant"] == "svm/n=10"
    assert result["split"]["fingerprint"] == REGISTERED_FINGERPRINT
    assert result["dataset_info"]["title"] == TITLE


def test_leaderboard_labels_the_board_from_the_dataset_spec(demo_label_efficiency, tmp_path):
    from hemabench.leaderboard import build_site

    results, result = demo_label_efficiency
    full = tmp_path / "full" / "handcrafted" / "label-efficiency"  # the same result, as if on full Acevedo
    full.mkdir(parents=True)
    (full / "acevedo.json").write_text(json.dumps({**result, "dataset": "acevedo"}))
    build_site(tmp_path / "site", None, [results, tmp_path / "full"], figures=False)
    pages = {p.name: p.read_text() for p in (tmp_path / "site" / "tasks").glob("*.html")}
    runs = {name: text for name, text in pages.items() if "--reported-" not in name}  # not the papers-only boards
    mini = [text for name, text in runs.items() if "--acevedo-mini--" in name]
    assert len(mini) == 1 and len(runs) == 2  # a board of its own, never ranked with the full dataset's
    assert "dinobloom" not in mini[0].lower()  # published Acevedo rows stay on the full dataset's boards
    assert f'<dd class="dataset-title">{TITLE}</dd>' in mini[0]
    assert TITLE in (tmp_path / "site" / "index.html").read_text()


@pytest.mark.slow
def test_wheel_ships_the_sample(tmp_path):
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(tmp_path),
                    str(PACKAGE.parent)], check=True)
    (wheel,) = tmp_path.glob("hemabench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    inside = {n for n in names if n.startswith("hemabench/data/acevedo_mini/")}
    expected = {f"hemabench/data/acevedo_mini/{f.relative_to(SAMPLE).as_posix()}" for f in bundled_files()}
    assert len(expected) == 200 and expected <= inside
    assert {"hemabench/data/acevedo_mini/LICENSE", "hemabench/data/acevedo_mini/README.md"} <= inside
