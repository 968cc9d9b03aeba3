"""Peak resident memory of embedding extraction at two (or more) dataset sizes.

Why: extraction streams batches into the cache chunk by chunk, so its memory must not grow
with the dataset: the growth at 8,000 images should equal the growth at 2,000. Seeded
96x96 JPEGs (noise and a blob, flat folder) are written once to a temporary folder; each
size takes the first N of them and runs ``extract_embeddings`` in a fresh child process
with a fresh cache folder, so the figure is that extraction alone. The child measures its
resident memory after loading the encoder and building the records (VmRSS), resets the
kernel's peak counter (``/proc/self/clear_refs``), extracts, and reads the peak (VmHWM):
growth = extraction peak - RSS before extraction. It also reports its whole-life peak
(``ru_maxrss``). With --workers > 0 the DataLoader workers are other processes, not in
these figures: the largest peak of the child's children is reported as ``worker peak``
(approximate: a forked worker's RSS counts the pages it shares with its parent, and
importing torch already forks helpers, so it is left empty with 0 workers). Linux only (procfs).

    python benchmarks/perf/extraction_memory.py [--sizes 2000 8000] [--encoder resnet18-random]
        [--workers 0] [--batch-size 64] [--device auto|cpu|cuda] [--repeats 1] [--json memory.json]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # run from a checkout without installing; _common beside

from _common import child_result, finish, run_child, start_script  # noqa: E402

from hemabench.cli.run import batch_size as parse_batch_size  # noqa: E402


def write_images(folder: Path, n: int, seed: int, side: int = 96) -> None:
    """``n`` seeded JPEGs ``img_00000.jpg`` ...: smooth colour noise with one filled ellipse."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for i in range(n):
        noise = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
        image = Image.fromarray(noise).resize((side, side), Image.BILINEAR)
        x, y, r = *rng.integers(side // 4, 3 * side // 4, size=2), int(rng.integers(side // 10, side // 4))
        ImageDraw.Draw(image).ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image.save(folder / f"img_{i:05d}.jpg", quality=90)


def proc_status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> None:
    """One extraction of the first ``args.n`` images; reports its memory to the parent."""
    import pandas as pd

    from hemabench.embeddings import extract_embeddings
    from hemabench.encoders import load_encoder

    encoder = load_encoder(args.encoder)
    records = pd.DataFrame({"path": sorted(p.name for p in Path(args.root).iterdir())[: args.n]})
    gc.collect()
    before = proc_status_mb("VmRSS")
    reset = reset_peak()
    with tempfile.TemporaryDirectory(prefix="hemabench-perf-cache-") as cache:
        start = time.perf_counter()
        embeddings, stats = extract_embeddings(encoder, Path(args.root), records, dataset="perf-memory",
                                               batch_size=args.batch_size, workers=args.workers, device=args.device,
                                               cache_base=Path(cache), progress=False)
        seconds = time.perf_counter() - start
        peak = proc_status_mb("VmHWM")
    child_result({"images": len(records), "images_forwarded": stats.images_forwarded,
                  "features": list(embeddings.features.shape), "seconds": seconds, "rss_before_mb": before,
                  "peak_mb": peak, "peak_reset": reset,
                  "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                  if args.workers else None})


def measure(args: argparse.Namespace, root: Path, n: int) -> dict:
    """Median over --repeats children of every figure of one size."""
    argv = ["--child", "--root", root, "--n", n, "--encoder", args.encoder, "--workers", args.workers,
            "--batch-size", args.batch_size, "--device", args.device]
    runs = []
    for i in range(args.repeats):
        runs.append(run_child(__file__, argv))
        r = runs[-1]
        print(f"  {n} images {i + 1}/{args.repeats}: RSS before {r['rss_before_mb']:.0f} MB, "
              f"peak {r['peak_mb']:.0f} MB, {r['seconds']:.1f} s", flush=True)
    med = {k: statistics.median(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[0][k] for k in runs[0]}
    if runs[0]["images_forwarded"] != n:
        raise SystemExit(f"the child forwarded {runs[0]['images_forwarded']} images, expected {n}")
    return {"images": n, "encoder": args.encoder, "RSS before (MB)": med["rss_before_mb"],
            "extraction peak (MB)": med["peak_mb"], "growth (MB)": med["peak_mb"] - med["rss_before_mb"],
            "process peak (MB)": med["ru_maxrss_mb"], "worker peak (MB)": med["worker_peak_mb"],
            "seconds": med["seconds"], "images/s": n / med["seconds"], "peak reset": runs[0]["peak_reset"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="images per extraction")
    parser.add_argument("--encoder", default="resnet18-random")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: all in the measured process)")
    parser.add_argument("--batch-size", type=parse_batch_size, default=64,
                        help="images per batch, or auto (64 by default so CPU and GPU figures compare)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=1, help="children per size (medians reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args, info = start_script(parser, argv, child)
    if info is None:  # a child phase
        return 0
    sizes = sorted(set(args.sizes))
    rows = []
    with tempfile.TemporaryDirectory(prefix="hemabench-perf-images-") as tmp:
        start = time.perf_counter()
        write_images(Path(tmp), sizes[-1], args.seed)
        print(f"wrote {sizes[-1]} seeded 96x96 JPEGs in {time.perf_counter() - start:.1f} s", flush=True)
        for n in sizes:
            rows.append(measure(args, Path(tmp), n))
    small, large = rows[0], rows[-1]
    ratio = large["growth (MB)"] / small["growth (MB)"] if small["growth (MB)"] > 0 else float("nan")
    slope = (large["growth (MB)"] - small["growth (MB)"]) / max(1, large["images"] - small["images"]) * 1000
    print(f"\ngrowth at {large['images']} / growth at {small['images']} images: {ratio:.3f} "
          f"({slope:+.2f} MB per 1,000 more images; flat memory means ~1.0 and ~0)")
    finish(args, "extraction_memory", f"extraction memory: {args.encoder}, workers {args.workers}, "
           f"batch {args.batch_size}", rows, info, growth_ratio=ratio, mb_per_1000_images=slope)
    return 0


if __name__ == "__main__":
    sys.exit(main())
