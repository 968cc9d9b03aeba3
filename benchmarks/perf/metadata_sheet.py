"""Time discovering a ``folder:`` dataset listed by a large ``metadata.parquet``, and its report.

    python benchmarks/perf/metadata_sheet.py [--rows 200000] [--images 2000] [--repeats 3] [--json sheet.json]

Writes ``--images`` small PNGs (two classes) and a ``metadata.parquet`` of ``--rows`` rows:
the images, then rows naming files that are not there (skipped: "listed ... but not found").
Times the discovery (reading the sheet, checking each listed file) and the skipped-file
summary that ``data verify`` and ``extract`` print, and reports the peak Python memory of a
discovery (tracemalloc). A 200,000-row sheet was once read row by row (32 s) and its
skipped files printed one per line (200,000 lines).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import finish, median_seconds, start_script  # noqa: E402


def build(root: Path, rows: int, images: int) -> Path:
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    names, labels = [], []
    for i in range(images):
        rel = f"{'ab'[i % 2]}/{i:06d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / rel)
        names.append(rel)
        labels.append("ab"[i % 2])
    names += [f"gone/{i:07d}.png" for i in range(rows - images)]
    labels += ["a"] * (rows - images)
    pd.DataFrame({"file_name": names, "label": labels}).to_parquet(root / "metadata.parquet")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    args, info = start_script(parser, argv)
    from hemabench.datasets.custom import Columns, discover_folder
    from hemabench.datasets.skips import skip_summary

    with tempfile.TemporaryDirectory(prefix="hemabench-sheet-") as tmp:
        root = build(Path(tmp) / "ward", args.rows, args.images)
        found = {}

        def discover():
            found["d"] = discover_folder(root, Columns(), False, f"folder:{root}")

        median, times = median_seconds(discover, args.repeats, label="discovery")
        tracemalloc.start()
        discover()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        skipped = found["d"].skipped
        summary_s, _ = median_seconds(lambda: found.update(lines=skip_summary(skipped, "sheet-bench", "verify")), 1)
    rows = [{"rows": args.rows, "images": args.images, "records": len(found["d"].records), "skipped": len(skipped),
             "discovery median s": round(median, 3), "discovery peak MB (python)": round(peak, 1),
             "summary s": round(summary_s, 3), "summary lines": len(found["lines"]),
             "times": " ".join(f"{t:.3f}" for t in times)}]
    finish(args, "metadata_sheet", "discovering a folder: dataset from a large metadata.parquet", rows, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
