"""``hemabench submit``, ``hemabench validate`` and ``hemabench check``."""

from __future__ import annotations

from pathlib import Path

from hemabench.cli.reproduce import add_reproduce_arguments, run_reproduce


def add_parser(commands) -> None:
    submit = commands.add_parser("submit", help="copy one encoder's run into submissions/<encoder>/")
    submit.add_argument("--encoder", required=True, metavar="NAME")
    submit.add_argument("--results", required=True, metavar="DIR", help="the run's --out folder")
    submit.add_argument("--submissions", default="submissions", metavar="DIR")
    submit.add_argument("--overwrite", action="store_true", help="replace result files already submitted")
    submit.set_defaults(handler=run_submit)

    validate = commands.add_parser("validate", help="check submissions: metadata, splits, recomputed metrics, paths")
    validate.add_argument("paths", nargs="*", default=["submissions"], metavar="PATH",
                          help="submissions root, submission folder or result file (default: submissions)")
    validate.add_argument("--data-root", metavar="DIR", help="datasets to recompute split fingerprints from")
    validate.set_defaults(handler=run_validate)

    check = commands.add_parser("check", help="regression checks on the committed reference results")
    check.add_argument("--submissions", default="submissions", metavar="DIR")
    check.add_argument("--encoder", action="append", metavar="NAME", help="only these submissions (repeatable)")
    check.add_argument("--epsilon", type=float, default=None, metavar="E",
                       help="--base: largest allowed move of a main score, 0-1 scale (default 0.02)")
    check.add_argument("--base", metavar="REV", help="also compare with the results committed at this git revision")
    check.add_argument("--no-rerun", action="store_true", help="skip re-running the references")
    add_reproduce_arguments(check)
    check.set_defaults(handler=run_check)


def run_submit(args) -> int:
    from hemabench.submissions import submit

    written = submit(args.encoder, args.results, args.submissions, overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    print(f"next: fill in the TODO fields of {written[0]}, then `hemabench validate {Path(args.submissions) / args.encoder}`")
    return 0


def _finish(problems, summary: str) -> int:
    for problem in problems:
        print(problem)
    errors = [p for p in problems if p.level == "error"]
    print(f"{summary}: {len(errors)} failure(s), {len(problems) - len(errors)} warning(s)")
    return 1 if errors else 0


def run_validate(args) -> int:
    from hemabench.submissions import validate_paths

    report = validate_paths(args.paths, data_root=args.data_root)
    return _finish(report.problems, f"validated {report.files} result file(s)")


def run_check(args) -> int:
    from hemabench.submissions import EPSILON, against_base, missing_references, rerun
    from hemabench.submissions.check import CheckReport

    if args.reproduce:
        return run_reproduce(args, _finish)
    epsilon = EPSILON if args.epsilon is None else args.epsilon
    report = CheckReport()
    if not args.no_rerun:
        rerun(Path(args.submissions), args.tolerance, args.encoder, report)
        for missing in missing_references(Path(args.submissions)):
            print(f"note: no committed reference for {missing}")
    if args.base:
        against_base(args.base, Path(args.submissions), epsilon, report)
    for line in report.lines:
        print(line)
    return _finish(report.problems, f"check (tolerance {args.tolerance}, ε = {epsilon})")
