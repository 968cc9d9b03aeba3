"""Argument types that refuse bad option values at parse time, with one line naming the value.

``--workers -3``, ``--device tpu``, ``--out`` at an existing file and ``--export`` at an
existing folder used to end in tracebacks deep inside PyTorch or numpy.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def device_name(text: str) -> str:
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def worker_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of DataLoader workers >= 0, got {text!r}")
    return int(text)


def folder_path(text: str) -> str:
    """A folder to write into: it may not exist yet, but must not be a file."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder, got an empty string")
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def export_path(text: str) -> str:
    """Where ``--export`` writes: a .npz or .parquet file (not a folder), or a new folder for
    ``save_to_disk`` (an existing one only if it holds an earlier export, never a user's own files)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file name or a folder, got an empty string")
    path = Path(text)
    if path.suffix.lower() in (".npz", ".parquet"):
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    elif path.exists() and not (path / "dataset_info.json").is_file():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a saved dataset: give a .npz or .parquet file, "
                                         "or a new folder")
    return text
