"""The ``hemabench`` command: subcommands live in small modules that add their own parsers."""

from __future__ import annotations

import argparse
import sys

from hemabench import __version__
from hemabench.errors import HemabenchError
from hemabench.registry import UnknownName


def build_parser() -> argparse.ArgumentParser:
    from hemabench.cli import cache, data, leaderboard, listing, pretrain, run, submissions, sweep

    parser = argparse.ArgumentParser(
        prog="hemabench", description="Benchmark image encoders for hematology under fixed protocols."
    )
    parser.add_argument("--version", action="version", version=f"hemabench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run, sweep, listing, data, cache, pretrain, leaderboard, submissions):
        module.add_parser(commands)
    return parser


def os_error_line(exc: OSError) -> str:
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc)
    return f"{paths}: {reason}" if paths else reason


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except (HemabenchError, UnknownName) as exc:
        print(f"hemabench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only folder, a full disk, a path that is a file: one line naming the path
        print(f"hemabench: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hemabench: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130
    finally:
        from hemabench.embeddings.distributed import leave_process_group

        leave_process_group()
