"""``hemabench run`` and ``hemabench extract``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hemabench.cli.common import add_data_options, print_table
from hemabench.errors import HemabenchError


def batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}")
    return int(text)


def add_device_options(parser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA with bf16 autocast when present), cpu or cuda")
    parser.add_argument("--batch-size", type=batch_size, default="auto", metavar="N",
                        help="images per forward pass; auto (default): the largest that fits on the GPU, 64 on CPU")
    parser.add_argument("--workers", type=int, default=None, metavar="N", help="DataLoader workers (default: by device)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder (worth it on large datasets)")
    parser.add_argument("--pixel-cache", action="store_true",
                        help="keep a pre-resized copy of each dataset in the cache, so later encoders decode nothing")
    parser.add_argument("--weights", metavar="PATH", help="a local weight file for the encoder (checked first)")


def add_run_arguments(parser, encoder_help: str) -> None:
    """The options `run` and `sweep` share: what to evaluate, where data and results are, the device."""
    parser.add_argument("--encoder", action="append", metavar="NAME", help=encoder_help)
    parser.add_argument("--suite", help="demo or full (default: demo without --encoder, full with it)")
    parser.add_argument("--task", action="append", metavar="T", help="only these tasks (repeatable)")
    parser.add_argument("--dataset", action="append", metavar="D", help="only these datasets (repeatable)")
    add_data_options(parser, per_dataset_root=False)
    parser.add_argument("--out", default="results", help="folder for result JSON files (default: ./results)")
    add_device_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="recompute results that already exist")


def add_parser(commands) -> None:
    run = commands.add_parser("run", help="evaluate encoders on a suite of tasks (default: the demo)")
    add_run_arguments(run, "encoder to evaluate (repeatable; default: the suite's offline baselines)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(handler=run_run)

    extract = commands.add_parser("extract", help="compute (or fetch from the cache) and export embeddings")
    extract.add_argument("--encoder", required=True, metavar="NAME")
    extract.add_argument("--dataset", required=True, metavar="D")
    add_data_options(extract)
    extract.add_argument("--split", help="also export the part of each record under this split rule")
    extract.add_argument("--export", metavar="FILE.npz", help="write features, labels, paths, split to this file")
    add_device_options(extract)
    extract.add_argument("--no-progress", action="store_true")
    extract.set_defaults(handler=run_extract)


def build_run(args):
    """Suite, encoders, plan and RunOptions from `run`-style arguments (shared with `hemabench sweep`)."""
    from hemabench.runner import RunOptions
    from hemabench.suites import load_suite

    suite = load_suite(args.suite or ("full" if args.encoder else "demo"))
    if args.suite is None and args.dataset:  # datasets named explicitly are run whichever suite lists them
        suite = dataclasses.replace(suite, datasets=tuple(args.dataset))
    encoders = args.encoder or list(suite.encoders)
    if not encoders:
        raise HemabenchError(f"suite {suite.name!r} names no encoders: give one with --encoder NAME")
    plan = suite.plan(args.task, args.dataset)
    if not plan:
        raise HemabenchError(f"nothing to run: suite {suite.name!r} has no task/dataset pair matching "
                             f"--task {args.task} --dataset {args.dataset}")
    options = RunOptions(out=Path(args.out), data_root=args.data_root, device=args.device, batch_size=args.batch_size,
                         workers=args.workers, compile=args.compile, pixel_cache=args.pixel_cache,
                         weights=args.weights, overwrite=args.overwrite,
                         progress=not args.no_progress, task_params=suite.task_params)
    return suite, encoders, plan, options


def run_run(args) -> int:
    from hemabench.embeddings.distributed import is_main_process
    from hemabench.runner import run_plan

    suite, encoders, plan, options = build_run(args)
    if is_main_process():
        print(f"suite {suite.name}: {len(encoders)} encoder(s) x {len(plan)} task/dataset pair(s) -> {options.out}/")
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


def ece_text(result: dict) -> str:
    """ECE of the main (else the detail) variant in %, temperature-scaled in brackets ("" without probabilities)."""
    metrics = result["metrics"]
    variants = [result["main_metric"].rsplit("/", 1)[0], (result.get("task_metadata") or {}).get("detail_variant")]
    variant = next((v for v in variants if f"{v}/ece" in metrics), variants[0])
    raw, scaled = metrics.get(f"{variant}/ece"), metrics.get(f"{variant}/ece_ts")
    return "" if raw is None else f"{100 * raw['mean']:.1f}" + (f" ({100 * scaled['mean']:.1f})" if scaled else "")


def print_summary(report) -> None:
    rows, skipped = [], []
    for o in report.outcomes:
        if o.status == "skipped":
            skipped.append(o)
            continue
        metric = o.result["main_metric"]
        score = o.result["metrics"][metric]
        low, high = score["ci95"]
        rows.append({"encoder": o.encoder, "task": o.task, "dataset": o.dataset, "main metric": metric,
                     "mean": f"{100 * score['mean']:.1f}", "± std": f"{100 * score['std']:.1f}",
                     "95% CI": f"[{100 * low:.1f}, {100 * high:.1f}]", "ECE (scaled)": ece_text(o.result),
                     "status": o.status})
    if rows:
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
    import numpy as np

    from hemabench.atomic import atomic_path
    from hemabench.datasets import DATASETS, load_dataset
    from hemabench.embeddings import extract_embeddings
    from hemabench.embeddings.distributed import is_main_process
    from hemabench.encoders import load_encoder
    from hemabench.splits import MaterialisedSplit, get_rule

    spec = DATASETS.get(args.dataset)
    discovery = load_dataset(spec.name, args.root, args.data_root)
    encoder = load_encoder(args.encoder, weights=args.weights)
    embeddings, stats = extract_embeddings(encoder, discovery.root, discovery.records, dataset=spec.name,
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
    if args.export:
        arrays = {"features": np.asarray(embeddings.features), "labels": discovery.records["label"].to_numpy(str),
                  "paths": np.asarray(embeddings.paths, dtype=str), "valid": embeddings.valid}
        if args.split:
            split = MaterialisedSplit.build(spec.name, get_rule(spec.name, args.split), discovery.records)
            arrays["split"] = split.assignment["part"].to_numpy(str)
            arrays["split_fingerprint"] = np.asarray(split.fingerprint)
        with atomic_path(args.export) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        print(f"exported {', '.join(arrays)} to {args.export}")
    return 0
