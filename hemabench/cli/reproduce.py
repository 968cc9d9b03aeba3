"""The ``--reproduce`` options of ``hemabench check`` (maintainers verifying a submission)."""

from __future__ import annotations

import argparse

from hemabench.cli.options import device_name


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def tolerance(text: str) -> float:
    from hemabench.submissions.compare import tolerance_problem

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if tolerance_problem(value):
        raise argparse.ArgumentTypeError(f"expected a finite share of prediction cells, 0 <= t < 1, got {text!r}")
    return value


def add_reproduce_arguments(check) -> None:
    from hemabench.submissions.compare import TOLERANCE

    check.add_argument("--reproduce", metavar="SUBMISSION", help="maintainers: re-compute one submission folder from "
                       "public weights and data; on success mark its results verified (see docs/submitting.md)")
    check.add_argument("--fraction", type=fraction, default=0.02, metavar="F",
                       help="--reproduce: share of test images re-embedded from scratch (default 0.02)")
    check.add_argument("--seed", type=int, default=0, help="--reproduce: seed of that sample (default 0)")
    check.add_argument("--tolerance", type=tolerance, default=TOLERANCE, metavar="F",
                       help="share of a variant's prediction cells allowed to differ from the re-run, near-ties only "
                            f"(default {TOLERANCE}; the whole tolerance policy: docs/integrity.md)")
    check.add_argument("--by", metavar="NAME", help="--reproduce: who verifies (default: git user.name)")
    check.add_argument("--data-root", metavar="DIR", help="--reproduce: where the datasets are")
    check.add_argument("--device", type=device_name, default="auto", help="--reproduce: auto, cpu, cuda, ...")
    check.add_argument("--no-record", action="store_true", help="--reproduce: compare only, write nothing")


def run_reproduce(args, finish) -> int:
    from hemabench.submissions.reproduce import reproduce

    report = reproduce(args.reproduce, fraction=args.fraction, seed=args.seed, tolerance=args.tolerance,
                       data_root=args.data_root, device=args.device, by=args.by, record=not args.no_record)
    for line in report.lines:
        print(line)
    for path in report.verified:
        print(f"verified: {path}")
    return finish(report.problems, f"reproduce {args.reproduce}")
