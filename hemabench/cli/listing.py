"""``hemabench list ...``: what is registered, and for datasets whether they were found."""

from __future__ import annotations

from hemabench.cli.common import add_data_options, print_json, print_table


def add_parser(commands) -> None:
    parser = commands.add_parser("list", help="list registered datasets, encoders, tasks or suites")
    parser.add_argument("what", choices=["datasets", "encoders", "tasks", "suites"], help="what to list")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_data_options(parser, per_dataset_root=False)
    parser.set_defaults(handler=run_list)


def run_list(args) -> int:
    rows = {"datasets": _datasets, "encoders": _encoders, "tasks": _tasks, "suites": _suites}[args.what](args)
    if args.json:
        print_json({args.what: rows})
    else:
        print_table([{k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()} for r in rows])
    return 0


def _encoders(args) -> list[dict]:
    from hemabench.encoders import ENCODERS

    return [{"encoder": s.name, "family": s.family, "arch": s.arch, "dim": s.embed_dim, "input": s.input_size,
             "params (M)": s.params_m, "offline": s.is_offline, "license": s.license} for s in ENCODERS]


def _tasks(args) -> list[dict]:
    from hemabench.tasks import TASKS

    return [{"task": t.name, "version": t.version, "family": t.family, "main metric": t.main_metric,
             "needs": t.needs.describe(), "datasets": list(t.datasets), "description": t.description} for t in TASKS]


def _suites(args) -> list[dict]:
    from hemabench.pipeline.suites import load_suite, suite_names

    return [{"suite": s.name, "encoders": list(s.encoders), "tasks": list(s.tasks), "datasets": list(s.datasets),
             "description": s.description} for s in map(load_suite, suite_names())]


def _datasets(args) -> list[dict]:
    from hemabench.datasets import DATASETS
    from hemabench.datasets.roots import where_looked
    from hemabench.splits import split_names

    rows = []
    for spec in DATASETS:
        where, found = where_looked(spec, args.data_root)
        rows.append({
            "dataset": spec.name, "title": spec.title, "classes": len(spec.classes),
            "synthetic": spec.synthetic, "found": found, "where": where, "splits": split_names(spec.name),
        })
    return rows
