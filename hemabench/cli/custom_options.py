"""Options for a user's own data (``--dataset folder:PATH`` / ``hf:NAME`` / ``hf-disk:PATH``), shared by
``run``, ``sweep``, ``extract`` and ``data``."""

from __future__ import annotations

CUSTOM_HELP = ("or your own data: folder:PATH (class sub-folders, or metadata.csv/.parquet with file_name,label"
               "[,patient][,bag_label]), hf:OWNER/NAME[@REVISION][:CONFIG], hf-disk:PATH (save_to_disk)")


def add_custom_options(parser, split: bool = True) -> None:
    group = parser.add_argument_group("your own data (folder:, hf:, hf-disk:)")
    group.add_argument("--image-column", metavar="NAME",
                       help="image column (default: image in a HF dataset, file_name in metadata.csv)")
    group.add_argument("--label-column", default="label", metavar="NAME", help="label column (default: label)")
    group.add_argument("--patient-column", default="patient", metavar="NAME",
                       help="patient column, if any: splits are then grouped by patient (default: patient)")
    group.add_argument("--bag-label-column", default="bag_label", metavar="NAME",
                       help="per-patient label for bag tasks such as aml-mil (default: bag_label)")
    if split:
        group.add_argument("--split", metavar="RULE",
                           help="split rule for your own data: cv5 (default), holdout-80-20 or holdout-70-30")


def columns_from(args):
    from hemabench.datasets.custom import Columns

    return Columns(image=getattr(args, "image_column", None), label=getattr(args, "label_column", "label"),
                   patient=getattr(args, "patient_column", "patient"),
                   bag_label=getattr(args, "bag_label_column", "bag_label"))


def custom_sources(args, names: list[str] | None) -> tuple:
    """(text, Columns, split) of each folder:/hf:/hf-disk: dataset named, with absolute folders (for sweep jobs)."""
    from hemabench.datasets.custom import absolute_text, is_custom

    split = getattr(args, "split", None)
    return tuple((absolute_text(n), columns_from(args), split) for n in names or [] if is_custom(n))


def resolve_names(args, names: list[str] | None) -> list[str] | None:
    """Dataset names as results use them: ``folder:``/``hf:`` text becomes ``custom-<name>``."""
    from hemabench.datasets import dataset_name
    from hemabench.errors import HemabenchError
    from hemabench.splits import split_names

    if not names:
        return names
    resolved = [dataset_name(n, columns_from(args), getattr(args, "split", None)) for n in names]
    rule = getattr(args, "split", None)
    custom = [n for n in resolved if n.startswith("custom-")]
    if rule and custom and rule not in split_names(custom[0]):
        raise HemabenchError(f"--split {rule}: not a rule for your own data; defined: {', '.join(split_names(custom[0]))}")
    return resolved
