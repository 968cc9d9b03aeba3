"""``hemabench run`` and ``hemabench extract``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hemabench.cli.common import add_data_options, print_table
from hemabench.cli.custom_options import CUSTOM_HELP, add_custom_options, custom_sources, resolve_names
from hemabench.cli.options import device_name, export_path, folder_path, worker_count
from hemabench.compute.backends import BACKENDS
from hemabench.errors import HemabenchError


def batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}")
    return int(text)


def add_device_options(parser) -> None:
    parser.add_argument("--device", type=device_name, default="auto", help="auto (CUDA with bf16 autocast when present), cpu or cuda")
    parser.add_argument("--batch-size", type=batch_size, default="auto", metavar="N",
                        help="images per forward pass; auto (default): the largest that fits on the GPU, 64 on CPU")
    parser.add_argument("--workers", type=worker_count, default=None, metavar="N", help="DataLoader workers (default: by device)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder (worth it on large datasets)")
    parser.add_argument("--pixel-cache", action="store_true",
                        help="keep a pre-resized copy of each dataset in the cache, so later encoders decode nothing")
    parser.add_argument("--weights", metavar="PATH", help="a local weight file for the encoder (checked first)")


def add_run_arguments(parser, encoder_help: str) -> None:
    """The options `run` and `sweep` share: what to evaluate, where data and results are, the device."""
    parser.add_argument("--encoder", action="append", metavar="NAME", help=encoder_help)
    parser.add_argument("--suite", help="demo or full (default: demo without --encoder, full with it)")
    parser.add_argument("--task", action="append", metavar="T", help="only these tasks (repeatable)")
    parser.add_argument("--dataset", action="append", metavar="D", help=f"only these datasets (repeatable); {CUSTOM_HELP}")
    add_data_options(parser, per_dataset_root=False)
    add_custom_options(parser)
    parser.add_argument("--out", type=folder_path, default="results", help="folder for result JSON files (default: ./results)")
    add_device_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="recompute results that already exist")
    parser.add_argument("--quiet", "--no-progress", dest="no_progress", action="store_true",
                        help="no progress bars (by default extraction and every protocol show one on stderr: "
                             "fits, folds or epochs done, with an estimate of the time left)")
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="where a task's independent fits run (label-efficiency, transfer): local processes "
                             "(default) or a dask cluster (pip install 'hemabench[dask]'); see docs/cluster.md")
    parser.add_argument("--backend-address", metavar="ADDR",
                        help="the dask scheduler, e.g. tcp://host:8786 (default: a local cluster, one worker per core)")


def add_parser(commands) -> None:
    run = commands.add_parser("run", help="evaluate encoders on a suite of tasks (default: the demo)")
    add_run_arguments(run, "encoder to evaluate (repeatable; default: the suite's offline baselines)")
    run.set_defaults(handler=run_run)

    extract = commands.add_parser("extract", help="compute (or fetch from the cache) and export embeddings")
    extract.add_argument("--encoder", required=True, metavar="NAME")
    extract.add_argument("--dataset", required=True, metavar="D", help=f"a registered dataset, {CUSTOM_HELP}")
    add_data_options(extract)
    add_custom_options(extract, split=False)
    extract.add_argument("--split", help="also export the part of each record under this split rule")
    extract.add_argument("--export", type=export_path, metavar="FILE.npz|FILE.parquet|DIR",
                         help="write the embeddings: .npz (features, labels, paths, split), .parquet or a folder "
                              "(a datasets.Dataset: id, label, patient, part, embedding; provenance in its metadata)")
    add_device_options(extract)
    extract.add_argument("--no-progress", action="store_true")
    extract.set_defaults(handler=run_extract)


def build_run(args):
    """Suite, encoders, plan and RunOptions from `run`-style arguments (shared with `hemabench sweep`)."""
    from hemabench.datasets import DATASETS
    from hemabench.datasets.custom import is_custom
    from hemabench.encoders import ENCODERS
    from hemabench.encoders.local import PREFIX
    from hemabench.pipeline.runner import RunOptions
    from hemabench.pipeline.suites import load_suite
    from hemabench.tasks import TASKS

    registered_encoders = [e for e in args.encoder or [] if not e.startswith(PREFIX)]  # local:<folder> are paths
    registered_datasets = [d for d in args.dataset or [] if not is_custom(d)]  # folder:/hf: are one's own data
    for registry, names in ((ENCODERS, registered_encoders), (TASKS, args.task), (DATASETS, registered_datasets)):
        registry.check(names)  # a typo is named (with the closest registered name) before any data search
    suite = load_suite(args.suite or ("full" if args.encoder else "demo"))
    custom = custom_sources(args, args.dataset)
    args.dataset = resolve_names(args, args.dataset)  # folder:/hf: text -> custom-<name>
    if args.suite is None and args.dataset:  # datasets named explicitly are run whichever suite lists them
        suite = dataclasses.replace(suite, datasets=tuple(args.dataset))
    elif args.dataset:  # one's own data joins any suite (its tasks and parameters)
        own = tuple(d for d in args.dataset if d.startswith("custom-") and d not in suite.datasets)
        suite = dataclasses.replace(suite, datasets=suite.datasets + own)
    encoders = args.encoder or list(suite.encoders)
    if not encoders:
        raise HemabenchError(f"suite {suite.name!r} names no encoders: give one with --encoder NAME")
    plan = suite.plan(args.task, args.dataset)
    if not any(suite.plan(args.task, args.dataset, encoder=e) for e in encoders):
        raise HemabenchError(f"nothing to run: suite {suite.name!r} has no task/dataset pair matching "
                             f"--task {args.task} --dataset {args.dataset}{unmet_needs(suite, args)}")
    options = RunOptions(out=Path(args.out), data_root=args.data_root, device=args.device, batch_size=args.batch_size,
                         workers=args.workers, compile=args.compile, pixel_cache=args.pixel_cache,
                         weights=args.weights, overwrite=args.overwrite,
                         progress=not args.no_progress, backend=args.backend,
                         backend_address=args.backend_address, task_params=suite.task_params,
                         dataset_task_params=suite.dataset_task_params, encoder_datasets=suite.encoder_datasets,
                         custom=custom)
    return suite, encoders, plan, options


def limits(suite, encoders: list[str]) -> str:
    """The suite's per-encoder dataset limits that apply to this run, for the plan line."""
    limited = [f"{e} on {', '.join(suite.encoder_datasets[e])} only" for e in encoders if e in suite.encoder_datasets]
    return f" ({'; '.join(limited)})" if limited else ""


def unmet_needs(suite, args) -> str:
    """Why one's own data gets no task: what each requested task needs that the data lacks."""
    from hemabench.datasets import get_dataset
    from hemabench.tasks import TASKS

    lacks = [f"{d} lacks {', '.join(TASKS.get(t).needs.missing(get_dataset(d)))} for {t}"
             for d in args.dataset or [] if d.startswith("custom-") for t in args.task or suite.tasks
             if TASKS.get(t).needs.missing(get_dataset(d))]
    return f"; {'; '.join(lacks)}" if lacks else ""


def run_run(args) -> int:
    from hemabench.embeddings.distributed import is_main_process
    from hemabench.pipeline.runner import run_plan

    suite, encoders, plan, options = build_run(args)
    if is_main_process():
        print(f"suite {suite.name}: {len(encoders)} encoder(s) x {len(plan)} task/dataset pair(s){limits(suite, encoders)}"
              f" -> {options.out}/")
    report = run_plan(encoders, plan, options)
    if not is_main_process():  # other torchrun ranks only helped with the extraction
        return 0
    print_summary(report)
    require_results(report, "run")
    return 0


def require_results(report, command: str) -> None:
    """A run that evaluated nothing is an error, with a hint when no data was found."""
    if not any(o.status != "skipped" for o in report.outcomes):
        no_data = all(o.reason.startswith("data not found") for o in report.outcomes)
        hint = f" (no data found: try `hemabench {command} --suite demo`, or set --data-root)" if no_data else ""
        raise HemabenchError(f"nothing was evaluated{hint}")


def _band(band) -> str:
    return f"[{100 * band[0]:.1f}, {100 * band[1]:.1f}]" if band else ""


def ece_text(result) -> str:
    """ECE of the main (else the detail) variant in %, temperature-scaled in brackets ("" without probabilities)."""
    metrics = result.metrics
    variants = [result.main_metric_variant, result.detail_variant]
    variant = next((v for v in variants if f"{v}/ece" in metrics), variants[0])
    raw, scaled = metrics.get(f"{variant}/ece"), metrics.get(f"{variant}/ece_ts")
    return "" if raw is None else f"{100 * raw['mean']:.1f}" + (f" ({100 * scaled['mean']:.1f})" if scaled else "")


def print_summary(report) -> None:
    """One row per result: the main metric's mean, the 95% CI of that mean, and for repeated runs
    the spread of single runs, labelled apart; a probe that stopped at max_iter is flagged."""
    rows, skipped = [], []
    for o in report.outcomes:
        if o.status == "skipped":
            skipped.append(o)
            continue
        if o.result is None:
            rows.append({"encoder": o.encoder, "task": o.task, "dataset": o.dataset, "status": o.status})
            continue
        score = o.result.main
        rows.append({"encoder": o.encoder, "task": o.task, "dataset": o.dataset, "main metric": o.result.main_metric,
                     "mean": f"{100 * score.mean:.1f}" + (f" ({o.result.max_iter_note})" if o.result.max_iter_note else ""), "± std": f"{100 * score.std:.1f}",
                     "95% CI of mean": _band(score.ci95), "spread95 (single runs)": _band(score.spread95),
                     "ECE (scaled)": ece_text(o.result),
                     "status": o.status})
    if rows:
        if not any(row.get("spread95 (single runs)") for row in rows):
            for row in rows:
                row.pop("spread95 (single runs)", None)
        print_table(rows)
    reasons = {}
    for o in skipped:
        reasons.setdefault((o.encoder, o.dataset, o.reason), []).append(o.task)
    details = {}
    for (encoder, dataset, reason), tasks in reasons.items():
        first, _, rest = reason.partition("\n")
        print(f"skipped {encoder} on {dataset} ({', '.join(tasks)}): {first}")
        if rest and reason.startswith("weights missing"):
            details.setdefault(reason, rest)
    for rest in details.values():  # how to provide the weights, once per encoder
        print(rest)
    print(f"{len(rows)} result(s), {len(skipped)} skipped, {report.images_forwarded} images embedded, "
          f"{report.seconds:.1f} s")


def run_extract(args) -> int:
    import hemabench
    from hemabench.cli.custom_options import columns_from
    from hemabench.cli.data import verify_command
    from hemabench.datasets import get_dataset, load_dataset
    from hemabench.datasets.skips import skip_summary
    from hemabench.embeddings import extract_embeddings
    from hemabench.embeddings.distributed import is_main_process
    from hemabench.embeddings.export import export_embeddings
    from hemabench.encoders import ENCODERS, load_encoder
    from hemabench.results.provenance import git_commit
    from hemabench.splits import MaterialisedSplit, get_rule

    ENCODERS.check([args.encoder])
    spec = get_dataset(args.dataset, columns_from(args), args.split)
    discovery = load_dataset(spec.name, args.root, args.data_root)
    encoder = load_encoder(args.encoder, weights=args.weights)
    embeddings, stats = extract_embeddings(encoder, discovery.image_source(), discovery.records, dataset=spec.name,
                                           batch_size=args.batch_size, workers=args.workers, device=args.device,
                                           progress=not args.no_progress, compile=args.compile,
                                           pixel_cache=args.pixel_cache)
    if not is_main_process():  # under torchrun, rank 0 reports and exports
        return 0
    ranks = stats.settings.get("ranks", 1)
    by = f" by {ranks} ranks" if ranks > 1 else ""
    source = "cache" if stats.from_cache else \
        f"{stats.images_forwarded} images embedded{by} on {stats.device}, batch size {stats.batch_size}"
    print(f"{spec.name} x {encoder.spec.name}: {len(embeddings.paths)} x {embeddings.features.shape[1]} "
          f"({source}, cache key {stats.key})")
    if embeddings.failed:
        print(f"{len(embeddings.failed)} images failed to decode and are marked invalid")
    for line in skip_summary(discovery.skipped, spec.name, verify_command(spec, discovery.root)):
        print(line)
    if args.export:
        split = MaterialisedSplit.build(spec.name, get_rule(spec.name, args.split), discovery.records) \
            if args.split else None
        made_by = {"encoder": encoder.spec.name, "weights_sha256": encoder.weights_sha256, "cache_key": stats.key,
                   "dataset": spec.name, "dataset_info": spec.info(), "n_records": int(len(discovery.records)),
                   "split": None if split is None else {"name": split.rule.name, "version": split.rule.version,
                                                        "seed": split.rule.seed, "fingerprint": split.fingerprint},
                   "hemabench_version": hemabench.__version__, "git_commit": git_commit()}
        local = not spec.custom or spec.kind != "hf" or Path(spec.location).exists()  # a hub name has no folder here
        source = (Path(spec.location) if spec.custom else discovery.root) if local else None
        fields = export_embeddings(args.export, embeddings, discovery.records, split, made_by, source)
        print(f"exported {', '.join(fields)} to {args.export}")
    return 0
