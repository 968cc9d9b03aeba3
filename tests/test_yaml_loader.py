"""Every YAML file goes through one loader (``untrusted.load_yaml``): hostile input to any reader is
one line naming the file, never a billion-laughs expansion, a traceback or a silently ignored file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hemabench
from hemabench.encoders.spec import load_spec_file
from hemabench.errors import HemabenchError
from hemabench.files import untrusted
from hemabench.leaderboard.clinical import CostModel
from hemabench.published.values import read_file
from hemabench.splits.fingerprints import register
from hemabench.submissions.ledger import load_ledger

PACKAGE = Path(hemabench.__file__).resolve().parent
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"
READERS = {
    "encoder spec": load_spec_file,
    "cost model": CostModel.from_file,
    "reported values": read_file,
    "verified ledger": load_ledger,
    "split registry": lambda path: register("synth-blood", {"version": 1}, "cv5", path),
}


def test_no_yaml_is_read_outside_the_one_loader():
    readers = {"safe_load", "load", "full_load", "unsafe_load", "safe_load_all", "load_all", "compose"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() == "files/untrusted.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr in readers and isinstance(node.value, ast.Name)
                    and node.value.id == "yaml"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: yaml.{node.attr}")
    assert found == []


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("content, message", [
    (LAUGHS, "line 1: YAML anchors and aliases (&, *) are not allowed here"),
    ("- just\n- a list\n", "the top level is a list, not a mapping"),
    (b"name: caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset 9)"),
    ("a: [1, 2\n", "is not valid YAML"),
    ("x: 1\n" + "# padding\n" * 20_000, "bytes is over the 100000-byte limit"),
])
def test_hostile_yaml_is_one_line_naming_the_file(tmp_path, monkeypatch, reader, content, message):
    monkeypatch.setattr(untrusted, "MAX_YAML_BYTES", 100_000)
    if reader == "reported values" and "limit" in message:
        monkeypatch.setattr("hemabench.published.values.MAX_BYTES", 100_000)
    if reader == "reported values" and "top level" in message:
        message = "top level: ['just', 'a list'] is not of type 'object'"  # its JSON schema says it first
    path = tmp_path / "x.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(HemabenchError) as info:
        READERS[reader](path)
    shown = str(info.value)
    assert "\n" not in shown and str(path) in shown and message in shown, shown


def test_an_empty_mapping_file_is_an_empty_mapping(tmp_path):
    path = tmp_path / "verified.yaml"
    path.write_text("# only a header\n")
    assert load_ledger(path) == {}
    assert untrusted.load_yaml(path, mapping=True) == {} and untrusted.load_yaml(path) is None
