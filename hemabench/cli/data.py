"""``hemabench data verify|splits|generate``: check a dataset on disk and inspect its splits."""

from __future__ import annotations

import sys

from hemabench.cli.common import add_data_options, print_json, print_table
from hemabench.cli.custom_options import CUSTOM_HELP, add_custom_options, columns_from
from hemabench.errors import DatasetNotFound, HemabenchError


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="verify datasets on disk and inspect their splits")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    verify = sub.add_parser("verify", help="count what is on disk against the published counts")
    verify.add_argument("name", help=f"dataset name (see `hemabench list datasets`), {CUSTOM_HELP}")
    add_data_options(verify)
    add_custom_options(verify, split=False)
    verify.add_argument("--full-check", action="store_true", help="decode every image instead of a header check")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(handler=run_verify)

    splits = sub.add_parser("splits", help="materialise a split: parts, counts per class, fingerprint")
    splits.add_argument("name", help=f"dataset name, {CUSTOM_HELP}")
    add_data_options(splits)
    add_custom_options(splits, split=False)
    splits.add_argument("--split", help="split rule name (default: the dataset's default rule)")
    splits.add_argument("--json", action="store_true", help="print one JSON object")
    splits.add_argument("--write-manifest", metavar="FILE", help="freeze the assignment to a JSON manifest")
    splits.add_argument("--check-manifest", metavar="FILE", help="compare with a frozen manifest; exit 1 on a difference")
    splits.add_argument("--register", action="store_true", help="maintainers: write this split's fingerprints and "
                        "per-class test counts into benchmarks/fingerprints.yaml (reviewed like code)")
    splits.set_defaults(handler=run_splits)

    generate = sub.add_parser("generate", help="generate the synthetic demo datasets now (else done on first use)")
    generate.add_argument("names", nargs="*", help="synthetic dataset names (default: all)")
    generate.set_defaults(handler=run_generate)


def run_verify(args) -> int:
    from hemabench.datasets import get_dataset, load_dataset
    from hemabench.datasets.skips import skip_summary
    from hemabench.datasets.verify import verify_report

    spec = get_dataset(args.name, columns_from(args))
    try:
        discovery = load_dataset(spec.name, args.root, args.data_root, full_check=args.full_check)
    except DatasetNotFound as exc:
        if not args.json:
            raise
        print_json({"dataset": spec.name, "usable": False, "error": str(exc), "classes": {}, "fine_labels": {},
                    "skipped": [], "expected": spec.expected})
        return 1
    report = verify_report(spec, discovery)
    if args.json:
        print_json(report)
        return 0
    _print_verify(report)
    for line in skip_summary(discovery.skipped, spec.name, verify_command(spec, discovery.root)):
        print(line)
    return 0


def verify_command(spec, root) -> str:
    """The `data verify` command that lists a dataset's skipped files: own data by its folder:/hf: text."""
    return f"hemabench data verify {spec.text}" if spec.custom else f"hemabench data verify {spec.name} --root {root}"


def _print_verify(report: dict) -> None:
    print(f"{report['dataset']}: {report['n_images']} usable images under {report['root']}")
    expected = report["expected"] or {}
    rows = [
        {"class": label, "found": report["classes"].get(label, 0), "published": expected.get(label, ""),
         "difference": "" if label not in expected else report["classes"].get(label, 0) - expected[label]}
        for label in sorted(set(report["classes"]) | set(expected))
    ]
    print_table(rows)
    if report["fine_labels"]:
        fine_expected = report["expected_fine"] or {}
        print("\nfine labels:")
        print_table([{"fine label": k, "found": v, "published": fine_expected.get(k, "")}
                     for k, v in report["fine_labels"].items()])
    for key in ("patients", "official_splits", "magnifications"):
        if key in report:
            print(f"\n{key.replace('_', ' ')}: {report[key]}")
    if report["skipped"]:
        print()
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)


def run_splits(args) -> int:
    from hemabench.datasets import get_dataset, load_dataset
    from hemabench.splits import MaterialisedSplit, get_rule

    spec = get_dataset(args.name, columns_from(args))
    name = spec.name  # folder:/hf: text -> custom-<name>
    rule = get_rule(name, args.split)
    discovery = load_dataset(name, args.root, args.data_root)
    split = MaterialisedSplit.build(name, rule, discovery.records)
    notes = spec.note_split(split) if spec.custom else []
    if split.patient_overlap():  # a rule defect, never expected: refuse rather than leak
        raise HemabenchError(f"split {rule.id} puts patients in two parts: {list(split.patient_overlap())[:5]}")
    problems = split.check_manifest(args.check_manifest) if args.check_manifest else []
    if args.write_manifest:
        split.write_manifest(args.write_manifest)
    if args.register:
        from hemabench.splits.fingerprints import register_split

        print(f"registered {rule.id} of {args.name} in {register_split(split, discovery)}", file=sys.stderr)
    if args.json:
        print_json({**split.summary(), **({"manifest_differences": problems} if args.check_manifest else {}),
                    **({"notes": notes} if notes else {})})
    else:
        print(f"{name} split {rule.id} ({rule.kind}, seed {rule.seed}): {rule.description}")
        print(f"fingerprint {split.fingerprint}")
        column = rule.stratify
        print(f"images per {column} and part:")
        print_table(split.counts(column).rename_axis(column).reset_index(), showindex=False)
        if split.assignment["patient"].notna().any():
            print(f"\npatients per {column} and part:")
            print_table(split.counts(column, patients=True).rename_axis(column).reset_index(), showindex=False)
        if args.write_manifest:
            print(f"manifest written to {args.write_manifest}")
        if args.check_manifest:
            print("\n".join(problems[:50]) if problems else f"matches manifest {args.check_manifest}")
        for note in notes:
            print(f"note: {note}")
    return 1 if problems else 0


def run_generate(args) -> int:
    from hemabench.datasets import DATASETS

    names = args.names or [spec.name for spec in DATASETS if spec.synthetic]
    for name in names:
        spec = DATASETS.get(name)
        if not spec.synthetic:
            raise HemabenchError(f"{name!r} is a real dataset; only synthetic ones can be generated")
        print(f"{name}: {spec.ensure()}")
    return 0
