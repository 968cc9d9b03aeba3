"""Files a discovery skipped, summarised for people: counts by reason, the first few names,
and the full list written to a file. A 200,000-row sheet once printed 200,000 lines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hemabench.files.atomic import atomic_write_text
from hemabench.paths import cache_dir

SHOWN = 10  # names printed; the rest are in the list file


def write_skip_list(skipped: list, dataset: str) -> Path:
    """Every skipped file and its reason, tab-separated, under ``$HEMABENCH_CACHE/skipped``."""
    path = cache_dir() / "skipped" / f"{dataset}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = str.maketrans({"\t": " ", "\n": " "})
    atomic_write_text(path, "path\treason\n" + "".join(f"{s.path.translate(clean)}\t{s.reason.translate(clean)}\n"
                                                       for s in skipped))
    return path


def skip_summary(skipped: list, dataset: str, command: str) -> list[str]:
    """Lines to print: how many, how many per reason, the first few names, where the full list is."""
    if not skipped:
        return []
    reasons = Counter(s.reason for s in skipped).most_common()
    lines = [f"{len(skipped)} file(s) skipped:"] + [f"  {n} x {reason}" for reason, n in reasons[:SHOWN]]
    if len(reasons) > SHOWN:
        lines.append(f"  ... and {len(reasons) - SHOWN} other reasons")
    lines += [f"  e.g. {s.path}: {s.reason}" for s in skipped[:SHOWN]]
    lines.append(f"full list: {write_skip_list(skipped, dataset)} (again: `{command}`)")
    return lines
