"""``hemabench leaderboard build``: the static site from submissions (and local runs)."""

from __future__ import annotations

from pathlib import Path

from hemabench.cli.options import folder_path


def add_parser(commands) -> None:
    parser = commands.add_parser("leaderboard", help="build the static leaderboard site")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="render submissions and local results into a static site")
    build.add_argument("--submissions", default="submissions", metavar="DIR",
                       help="submissions folder (<encoder>/results/<task>/<dataset>.json; default: ./submissions)")
    build.add_argument("--results", action="append", metavar="DIR",
                       help="also show local run results (<encoder>/<task>/<dataset>.json; repeatable; "
                            "default: ./results when it exists); they replace a submission's result on the same board")
    build.add_argument("--out", type=folder_path, default="leaderboard", metavar="DIR", help="output folder (default: ./leaderboard)")
    build.add_argument("--data-root", metavar="DIR", help="where datasets live, to show attention cells as thumbnails "
                       "(without it, their paths are shown)")
    build.add_argument("--no-figures", action="store_true", help="tables only (a much faster build)")
    build.set_defaults(handler=run_build)


def run_build(args) -> int:
    from hemabench.errors import HemabenchError
    from hemabench.leaderboard import build_site

    results = [r for r in (args.results if args.results is not None else ["results"]) if Path(r).is_dir()]
    if not Path(args.submissions).is_dir() and not results:
        raise HemabenchError(f"nothing to build: no submissions folder {args.submissions!r} and no results folder "
                             f"{' '.join(args.results or ['./results'])}")
    report = build_site(args.out, args.submissions, results, data_root=args.data_root, figures=not args.no_figures)
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"{report.results} results on {report.boards} boards (+ {report.reported} published numbers) -> "
          f"{report.pages} pages, {report.figures} figures, {report.thumbnails} thumbnails, {report.downloads} downloads "
          f"in {report.seconds:.1f} s; open {Path(args.out) / 'index.html'}")
    return 0
