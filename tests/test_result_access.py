"""The typed Result is the only way code outside ``hemabench/results/`` reads or writes a result (issue 26).

What counts as a string-keyed result access (``violations``), in a module outside ``hemabench/results/``:

- ``x["<field>"]``, ``x.get("<field>")`` (also ``pop``, ``setdefault``) or ``"<field>" in x``, where
  ``<field>`` is a top-level property of ``result.schema.json`` and ``x`` holds a result:
  a name ``result``, ``res`` or ``*_result``; a parameter annotated ``Result``; a name assigned, in the
  same function, from a result (``Result.load(...)``, ``entry.result``, ``result.with_encoder_cost(...)``);
  an attribute ``.result`` (``entry.result``, ``outcome.result``); or ``.data`` / ``.document`` of any of these;
- ``.data`` of a result at all: the raw object is ``.document``, for whole-document uses only
  (hashing, comparing two results field by field, writing a submission);
- a parameter named like a result and annotated ``dict`` (``result: dict``, ``result: Result | dict``).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import hemabench
from hemabench.results import Result
from hemabench.results.result import SCHEMA_PATH
from hemabench.submissions.validate import validate_result

PACKAGE = Path(hemabench.__file__).parent
REFERENCES = Path(__file__).resolve().parents[1] / "submissions"
FIELDS = frozenset(json.loads(SCHEMA_PATH.read_text())["properties"])
RESULT_NAME = re.compile(r"^(result|res|\w+_result)$")
RESULT_TYPE = re.compile(r"\bResult\b")
MAKERS = ("with_encoder_cost", "with_verification", "as_written")  # Result methods that give a Result
ACCESS = ("get", "pop", "setdefault")


def _holds_result(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names or bool(RESULT_NAME.match(node.id))
    if isinstance(node, ast.Attribute):
        return node.attr == "result" or (node.attr in ("data", "document") and _holds_result(node.value, names))
    if isinstance(node, ast.Call):
        func = node.func
        made = isinstance(func, ast.Attribute) and func.attr in MAKERS and _holds_result(func.value, names)
        return made or bool(RESULT_TYPE.fullmatch(ast.unparse(func).split(".")[0]))
    return False


def _result_names(scope: ast.AST) -> set[str]:
    """Names holding a result in one function (or a module's top level): annotated parameters, then
    assignments from results, to a fixed point."""
    names = {a.arg for a in ast.walk(scope) if isinstance(a, ast.arg) and a.annotation is not None
             and RESULT_TYPE.search(ast.unparse(a.annotation))}
    while True:
        found = {t.id for node in ast.walk(scope) if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr))
                 and node.value is not None and _holds_result(node.value, names)
                 for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
        if found <= names:
            return names
        names |= found


def _is_field(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in FIELDS


def _dict_for_result(arg: ast.arg) -> bool:
    """``result: dict``, ``result: dict | None``, ``x: Result | dict`` (not ``results: dict[str, Result]``)."""
    parts = [p.strip() for p in ast.unparse(arg.annotation).split("|")] if arg.annotation is not None else []
    takes_dict = any(p == "dict" or p.startswith("dict[") for p in parts)
    return takes_dict and (bool(RESULT_NAME.match(arg.arg)) or "Result" in parts)


def violations(source: str, shown: str) -> list[str]:
    """Every string-keyed result access and ``result: dict`` parameter of one module (module docstring)."""
    tree = ast.parse(source)
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    found = set()
    for scope in scopes:
        names = _result_names(scope)
        for node in ast.walk(scope):
            what = None
            if isinstance(node, ast.Subscript) and _is_field(node.slice) and _holds_result(node.value, names):
                what = f"[{node.slice.value!r}]"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ACCESS \
                    and node.args and _is_field(node.args[0]) and _holds_result(node.func.value, names):
                what = f".{node.func.attr}({node.args[0].value!r})"
            elif isinstance(node, ast.Compare) and _is_field(node.left) and isinstance(node.ops[0], (ast.In, ast.NotIn)) \
                    and _holds_result(node.comparators[0], names):
                what = f"{node.left.value!r} in"
            elif isinstance(node, ast.Attribute) and node.attr == "data" and _holds_result(node.value, names):
                what = ".data (the raw object: an accessor, or .document for the whole document)"
            elif isinstance(node, ast.arg) and _dict_for_result(node):
                what = f"parameter {node.arg}: {ast.unparse(node.annotation)}"
            if what:
                found.add(f"{shown}:{node.lineno}: {ast.unparse(node) if not isinstance(node, ast.arg) else ''} {what}")
    return sorted(found)


def package_violations(root: Path) -> list[str]:
    return [v for path in sorted(root.rglob("*.py")) if "results" not in path.relative_to(root).parts[:1]
            for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(root)))]


def test_no_string_keyed_result_access_outside_results():
    assert package_violations(PACKAGE) == []


PLANTED = '''
from hemabench.results import Result

def reads(result, entry, path, outcome):
    stored = Result.load(path)
    cost = result["encoder_cost"]
    info = entry.result.data.get("dataset_info")
    if "verification" in stored:
        pass
    fresh = outcome.result.as_written()
    fresh.document["panel_splits"]
    return stored.get("excluded")

def annotated(other: Result, result: dict, res: Result | dict):
    return other["trust"]
'''
CLEAN = '''
from hemabench.results import Result

def reads(result: Result, entry, rows: dict):
    split = result.split
    member = split["dataset"]  # a split's own field, not the result's
    rows["encoder_cost"] = result.encoder_cost  # a table row, not a result
    return entry.result.dataset_info.get("source"), member, result.document
'''


def test_the_check_finds_planted_violations(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "inside.py").write_text(PLANTED)  # hemabench/results/ itself may read its JSON
    (tmp_path / "clean.py").write_text(CLEAN)
    assert package_violations(tmp_path) == []
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "planted.py").write_text(PLANTED)
    found = package_violations(tmp_path)
    assert all(v.startswith("sub/planted.py:") for v in found)
    lines = sorted({int(v.split(":")[1]) for v in found})
    assert lines == [6, 7, 8, 11, 12, 14, 15], found
    assert any("parameter result: dict" in v for v in found) and any("parameter res: Result | dict" in v for v in found)
    assert any(".data (the raw object" in v for v in found) and not any("other: Result" in v for v in found)


# -- the accessors: every top-level field of the schema has one ---------------------------------------
ACCESSORS = {"schema_version": "schema_version", "task": "task", "task_version": "task_version",
             "task_metadata": "metadata", "dataset": "dataset", "dataset_info": "dataset_info", "split": "split",
             "encoder": "encoder", "main_metric": "main_metric", "labels": "labels", "metrics": "metrics",
             "per_class": "per_class", "confusion_matrix": "confusion_matrix", "predictions": "predictions",
             "excluded": "excluded", "extra": "extra", "provenance": "provenance", "source_split": "source_split",
             "encoder_cost": "encoder_cost", "panel_splits": "panel_splits", "trust": "trust",
             "verification": "verification"}


def _reference(task: str, dataset: str, encoder: str = "handcrafted") -> tuple[dict, Result]:
    path = REFERENCES / encoder / "results" / task / f"{dataset}.json"
    return json.loads(path.read_text()), Result.load(path)


def test_every_schema_field_has_an_accessor_returning_the_stored_value():
    assert set(ACCESSORS) == FIELDS  # a field added to the schema needs its accessor (and a line here)
    raw, result = _reference("blood-shift", "synth-blood")
    raw = {**raw, "trust": {"tier": "paper"}, "verification": {"by": "maint", "result_sha256": "0" * 64},
           "source_split": {"dataset": "synth-bm", "name": "holdout", "version": 1, "fingerprint": "1" * 64}}
    result = Result.from_dict(raw)
    for field, accessor in ACCESSORS.items():
        if field == "encoder":
            assert (result.encoder, result.weights_sha256, result.encoder_spec) == (
                raw["encoder"]["name"], raw["encoder"]["weights_sha256"], raw["encoder"]["spec"])
        else:
            assert getattr(result, accessor) == raw[field], field
    assert result.panel_splits and result.excluded == [] and result.encoder_cost["device"]
    assert result.split_fingerprints == [raw["split"]["fingerprint"], "1" * 64] + [
        s["fingerprint"] for s in raw["panel_splits"]]
    bare = Result.from_dict({k: v for k, v in raw.items() if k not in (
        "trust", "verification", "encoder_cost", "panel_splits", "dataset_info", "excluded", "source_split")})
    assert (bare.trust, bare.verification, bare.encoder_cost, bare.panel_splits, bare.dataset_info, bare.excluded,
            bare.source_split, bare.has_source_split) == ({}, None, None, [], {}, [], {}, False)


def test_writes_give_a_new_result_with_the_field_in_place():
    raw, result = _reference("cell-probe", "synth-bm")
    keys = list(raw)
    cost = {**raw["encoder_cost"], "device": "elsewhere"}
    changed = result.with_encoder_cost(cost)
    assert list(changed.document) == keys and changed.encoder_cost == cost  # kept where it was
    assert result.encoder_cost == raw["encoder_cost"]  # the original is untouched
    assert "encoder_cost" not in result.with_encoder_cost(None).document
    verified = result.with_verification({"by": "maint"})
    assert list(verified.document) == keys + ["verification"] and verified.verification == {"by": "maint"}
    assert verified.vouched_document == raw


@pytest.mark.parametrize("field, value, where", [
    ("verification", {"by": "maint", "result_sha256": "not a sha"}, "verification/result_sha256"),
    ("verification", "verified", "verification"),
    ("trust", "paper", "trust"),
    ("trust", {"tier": 1}, "trust/tier"),
])
def test_the_schema_documents_trust_and_verification(tmp_path, field, value, where):
    raw, _ = _reference("cell-probe", "synth-bm")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**raw, field: value}))
    problems = validate_result(path, "r.json")
    assert [p.field for p in problems] == [where] and problems[0].message.startswith("schema:")
    path.write_text(json.dumps({**raw, "trust": {"tier": "paper"}}))
    assert [p for p in validate_result(path, "r.json") if p.level == "error"] == []
