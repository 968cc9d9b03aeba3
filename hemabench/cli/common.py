"""Options and output helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import sys

from tabulate import tabulate


def add_data_options(parser: argparse.ArgumentParser, per_dataset_root: bool = True) -> None:
    parser.add_argument("--data-root", metavar="DIR", help="folder holding each dataset under its canonical folder name "
                        "(default: $HEMABENCH_DATA)")
    if per_dataset_root:
        parser.add_argument("--root", metavar="DIR", help="this dataset's folder itself (or its parent)")


def print_json(payload: object) -> None:
    json.dump(payload, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def print_table(rows: list[dict] | list[list], headers="keys", **kwargs) -> None:
    print(tabulate(rows, headers=headers, **kwargs))
