"""Reading YAML and JSON that arrive in a pull request (and every YAML file): bounded, and one-line
errors naming the file.

A 2 kB YAML "billion laughs" (nested aliases) expands to gigabytes in ``yaml.safe_load``; a
JSON array nested 200k deep overflows the parser's recursion; a non-UTF-8 file raises a
UnicodeDecodeError deep inside a loader. Submission files need none of these features, so
anchors and aliases are refused before loading, nesting is capped, sizes are capped, and text
must be UTF-8. Every refusal is an ``UntrustedInput`` whose message is one line naming the file.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import yaml

from hemabench.errors import HemabenchError

MAX_DEPTH = 64  # deepest nesting a submission file may have (results use about 6)
MAX_YAML_BYTES = 16 * 2**20  # the largest YAML file read (the committed ones are under 64 kB)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
         yaml.FlowSequenceStartToken)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


class UntrustedInput(HemabenchError):
    """An input file refused before (or instead of) parsing; the message names the file."""


def read_bytes(path: str | Path, limit: int, shown: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. A FIFO or device named like a
    result file once blocked ``validate`` forever: the file is opened without blocking and
    refused unless it is a regular file."""
    path, shown = Path(path), shown or str(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedInput(f"{shown}: is not a regular file (a FIFO, device or socket); not read")
        if info.st_size > limit:
            raise UntrustedInput(f"{shown}: {info.st_size} bytes is over the {limit}-byte limit for this file")
        return handle.read(limit + 1)


def read_text(path: str | Path, limit: int, shown: str | None = None) -> str:
    """The file's text: at most ``limit`` bytes, strict UTF-8, a regular file only."""
    shown = shown or str(path)
    data = read_bytes(path, limit, shown)
    if len(data) > limit:  # grew after the size check
        raise UntrustedInput(f"{shown}: over the {limit}-byte limit for this file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedInput(f"{shown}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def load_yaml(path: str | Path, limit: int | None = None, shown: str | None = None, *, mapping: bool = False):
    """``yaml.safe_load`` of a file without anchors, aliases, tags of its own or deep nesting: the one
    way hemabench reads YAML (submission metadata, specs, suites, mappings, registries, reported
    values). At most ``limit`` bytes (``MAX_YAML_BYTES`` by default). ``mapping``: the top level must
    be a mapping (an empty file reads as ``{}``)."""
    shown = shown or str(path)
    text = read_text(path, MAX_YAML_BYTES if limit is None else limit, shown)
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                line = token.start_mark.line + 1
                raise UntrustedInput(f"{shown}: line {line}: YAML anchors and aliases (&, *) are not allowed here")
            depth += isinstance(token, _OPEN) - isinstance(token, _CLOSE)
            if depth > MAX_DEPTH:
                raise UntrustedInput(f"{shown}: line {token.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UntrustedInput(f"{shown}: is not valid YAML: " + " ".join(str(exc).split())) from None
    if mapping and data is None:
        return {}
    if mapping and not isinstance(data, dict):
        raise UntrustedInput(f"{shown}: the top level is a {type(data).__name__}, not a mapping of names to values")
    return data


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[``/``{`` outside strings, without parsing (linear, no recursion)."""
    bare = np.frombuffer(_STRING.sub(b'""', data), dtype=np.uint8)
    steps = (np.isin(bare, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(bare, (ord("]"), ord("}"))).astype(np.int64))
    return int(np.cumsum(steps).max(initial=0))


def load_json(path: str | Path, limit: int, shown: str | None = None):
    """``json.loads`` of a file at most ``limit`` bytes, UTF-8, nested at most MAX_DEPTH deep."""
    shown = shown or str(path)
    text = read_text(path, limit, shown)
    depth = json_depth(text.encode("utf-8"))
    if depth > MAX_DEPTH:
        raise UntrustedInput(f"{shown}: JSON nested {depth} levels deep (at most {MAX_DEPTH} allowed)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UntrustedInput(f"{shown}: is not readable JSON: {exc}") from None
