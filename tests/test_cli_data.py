"""The data commands as a user runs them: exit codes, JSON, messages."""

from __future__ import annotations

import hashlib
import json

import trees


def test_verify_json_reports_counts_skips_and_differences(tmp_path, cli_json):
    trees.matek_bm(tmp_path)
    code, report = cli_json("data", "verify", "matek-bm", "--root", tmp_path)
    assert code == 0 and report["usable"] is True
    assert report["dataset"] == "matek-bm" and report["classes"] == {"ABE": 3, "ART": 5, "BLA": 1, "NGS": 5}
    assert report["skipped"] == [{"path": "NGS/0001-1000/NGS_00006.jpg", "reason": "truncated JPEG (no end marker)"}]
    assert report["expected"]["ART"] == 19630
    fgc = next(d for d in report["differences"] if d["label"] == "FGC")
    assert fgc == {"label": "FGC", "found": 0, "expected": 47, "difference": -47}


def test_verify_prints_a_table_and_warnings(tmp_path, cli):
    trees.acevedo(tmp_path)
    code, out, err = cli("data", "verify", "acevedo", "--data-root", tmp_path)
    assert code == 0
    assert "published" in out and "neutrophil/._SNE_9.jpg" in out and "PMY" in out
    assert "warning: class BAS: found 2, published 1218 (-1216)" in err


def test_verify_missing_dataset_is_one_clear_message(tmp_path, cli):
    code, out, err = cli("data", "verify", "breakhis", "--data-root", tmp_path)
    assert code == 2 and out == ""
    assert err.startswith("hemabench: error: dataset 'breakhis'") and "Traceback" not in err
    assert "BreaKHis_v1" in err


def test_verify_missing_dataset_as_json(tmp_path, cli):
    code, out, _ = cli("data", "verify", "raabin", "--root", tmp_path / "nope", "--json")
    report = json.loads(out)
    assert code == 1 and report["usable"] is False and "nope" in report["error"]


def test_unknown_dataset_lists_the_registered_ones(cli):
    code, _, err = cli("data", "verify", "imagenet")
    assert code == 2 and "unknown dataset 'imagenet'; registered:" in err and "matek-bm" in err


def test_list_datasets_says_where_each_was_found(tmp_path, cli_json):
    trees.raabin(tmp_path)
    code, listing = cli_json("list", "datasets", "--data-root", tmp_path)
    rows = {row["dataset"]: row for row in listing["datasets"]}
    assert code == 0 and rows["raabin"]["found"] and rows["raabin"]["where"] == str(tmp_path / "Raabin-WBC")
    assert not rows["matek-bm"]["found"] and str(tmp_path / "BM_cytomorphology_data") in rows["matek-bm"]["where"]
    assert rows["synth-bm"]["synthetic"] and rows["raabin"]["splits"] == ["official"]


def test_splits_fingerprint_matches_the_manifest_pairs(tmp_path, cli_json):
    trees.breakhis(tmp_path)
    manifest = tmp_path / "breakhis-split.json"
    code, summary = cli_json("data", "splits", "breakhis", "--root", tmp_path, "--write-manifest", manifest)
    assert code == 0 and summary["split"] == "patient-cv5" and summary["patients_in_two_parts"] == 0
    pairs = sorted(json.loads(manifest.read_text())["assignment"].items())
    independent = hashlib.sha256("".join(f"{p}\t{part}\n" for p, part in pairs).encode()).hexdigest()
    assert summary["fingerprint"] == independent
    assert sum(summary["parts"].values()) == 72 and len(summary["rotations"]) == 5


def test_splits_check_manifest_fails_on_a_moved_file(tmp_path, cli):
    trees.aml_hehr(tmp_path)
    manifest = tmp_path / "aml.json"
    assert cli("data", "splits", "aml-hehr", "--root", tmp_path, "--write-manifest", manifest)[0] == 0
    assert cli("data", "splits", "aml-hehr", "--root", tmp_path, "--check-manifest", manifest)[0] == 0
    frozen = json.loads(manifest.read_text())
    path = "control/CON000/image_0.tif"
    frozen["assignment"][path] = "fold9"
    manifest.write_text(json.dumps(frozen))
    code, out, _ = cli("data", "splits", "aml-hehr", "--root", tmp_path, "--check-manifest", manifest)
    assert code == 1 and f"moved: {path} (fold9 -> " in out


def test_splits_table_shows_parts_per_class(tmp_path, cli):
    trees.raabin(tmp_path)
    code, out, _ = cli("data", "splits", "raabin", "--root", tmp_path)
    assert code == 0 and "official@v1" in out and "fingerprint" in out
    ngs = next(line for line in out.splitlines() if line.startswith("NGS"))
    assert ngs.split() == ["NGS", "4", "2", "6"]  # train, test, total


def test_verify_a_perfect_copy_prints_no_warning(tmp_path, cli, monkeypatch):
    """Fine labels that only restate their class (BA for BAS) are not 'missing from the publication'."""
    from hemabench.datasets.acevedo import Acevedo

    base = trees.acevedo(tmp_path)
    (base / "neutrophil" / "._SNE_9.jpg").unlink()
    (base / "ig" / "SNE_77.jpg").unlink()
    published = {"BAS": 2, "EOS": 2, "EBO": 1, "MYC": 4, "LYT": 2, "MON": 1, "NGS": 3, "PLA": 2}
    monkeypatch.setattr(Acevedo, "expected", published)
    monkeypatch.setattr(Acevedo, "expected_fine", {"PMY": 1, "MY": 1, "MMY": 1, "IG": 1, "SNE": 1, "BNE": 1,
                                                   "NEUTROPHIL": 1})
    code, out, err = cli("data", "verify", "acevedo", "--data-root", tmp_path)
    assert code == 0 and "warning" not in err.lower(), err
    # a stray fine label inside a class the publication breaks down is still reported
    trees.write_image(base / "ig" / "PMY_9.jpg")
    code, out, err = cli("data", "verify", "acevedo", "--data-root", tmp_path)
    assert "warning: class PMY: found 2, published 1 (+1)" in err and "class MYC: found 5" in err
    assert "class BA:" not in err
