"""Decode cost: is image decoding or the model the bottleneck of extraction, per dataset?

For stand-ins with each real dataset's format and size (_inputs.py), or the real files with
``--root DIR`` for one ``--like`` dataset, per image and on one core:
- decode: open, decode, convert to RGB;
- decode + resize: the encoder's geometric preprocessing too (what a DataLoader worker does);
- pixel cache: reading the pre-resized uint8 copy instead (``--pixel-cache``);
- JPEG draft: decoding JPEGs at a reduced DCT scale first (PIL ``draft``). Not used by
  hemabench because it changes the pixels, so the embeddings; shown for what it would save.
The model's cost per image is the bare forward at the extraction batch size on the device.
With W DataLoader workers (hemabench's default for the device) the loader supplies
W / (decode + resize) images per second; whichever side is slower is the bottleneck.

    python benchmarks/perf/decode_cost.py [--encoder dinobloom-s] [--random-weights] [--images 128]
        [--repeats 3] [--device auto] [--workers N] [--datasets matek-bm breakhis ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import add_json_option, finish, machine, machine_line, median_seconds  # noqa: E402
from _inputs import LAYOUTS, load_benchmark_encoder, write_like  # noqa: E402
from PIL import Image  # noqa: E402

from hemabench.compute.device import (
    default_workers,  # noqa: E402
    resolve_device,  # noqa: E402
)
from hemabench.embeddings.accel import choose_batch_size, prepare_model  # noqa: E402
from hemabench.embeddings.cache import CHUNK_SIZE  # noqa: E402
from hemabench.embeddings.pixels import PixelCache, split_transform  # noqa: E402


def decode(path: Path, draft: int | None = None) -> Image.Image:
    with Image.open(path) as image:
        if draft:
            image.draft("RGB", (draft, draft))
        return image.convert("RGB")


def model_ms_per_image(encoder, split, device: torch.device, repeats: int) -> tuple[float, int]:
    runner = prepare_model(encoder.model, device)
    sample = split.normalise(split.pixels(Image.new("RGB", (64, 64)))[None])[0]
    size = choose_batch_size("auto", runner, sample, CHUNK_SIZE)
    batch = torch.rand(size, *sample.shape, device=device)

    def forward() -> None:
        with torch.inference_mode(), runner.autocast:
            runner(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    seconds, _ = median_seconds(forward, repeats, warmup=1)
    return 1000 * seconds / size, size


def dataset_row(name: str, files: list[Path], split, model_ms: float, workers: int, repeats: int) -> dict:
    per_image = lambda fn: 1000 * median_seconds(lambda: [fn(f) for f in files], repeats, warmup=1)[0] / len(files)  # noqa: E731
    decode_ms = per_image(decode)
    resize_ms = per_image(lambda f: split.pixels(decode(f)))
    cache = PixelCache("decode-cost-" + name, split.identity(), Path(tempfile.mkdtemp(prefix="hemabench-pixels-")))
    cache.write_chunk(0, np.stack([split.pixels(decode(f)).numpy() for f in files]), [""] * len(files))
    cache_ms = 1000 * median_seconds(lambda: [cache.read(0, i) for i in range(len(files))], repeats, warmup=1)[0] / len(files)
    side = int(split.pixels(Image.new("RGB", (64, 64))).shape[-1])
    draft_ms = per_image(lambda f: split.pixels(decode(f, side))) if LAYOUTS.get(name, ("",))[0] == "JPEG" else None
    supply = 1000 * max(1, workers) / resize_ms  # images/s the loader can feed
    demand = 1000 / model_ms
    return {"dataset": name, "format": LAYOUTS[name][0] if name in LAYOUTS else "real files",
            "size": "x".join(map(str, Image.open(files[0]).size)), "decode ms": decode_ms,
            "decode+resize ms": resize_ms, "pixel cache ms": cache_ms, "JPEG draft+resize ms": draft_ms,
            "model ms": model_ms, "workers": workers, "loader img/s": supply, "model img/s": demand,
            "bottleneck": "decode" if supply < demand else "model",
            "with pixel cache": "decode" if 1000 * max(1, workers) / cache_ms < demand else "model"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="dinobloom-s")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--datasets", nargs="+", default=list(LAYOUTS), choices=sorted(LAYOUTS))
    parser.add_argument("--root", type=Path, help="real image files (any depth) instead of stand-ins, for one dataset")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: hemabench's)")
    parser.add_argument("--images-dir", type=Path, default=Path(tempfile.gettempdir()) / "hemabench-perf-images")
    add_json_option(parser)
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info))
    torch.set_num_threads(torch.get_num_threads())
    encoder = load_benchmark_encoder(args.encoder, args.random_weights)
    split = split_transform(encoder.transform)
    device = resolve_device(args.device)
    workers = default_workers(device) if args.workers is None else args.workers
    model_ms, batch = model_ms_per_image(encoder, split, device, args.repeats)
    print(f"{args.encoder}: {model_ms:.2f} ms per image on {device} at batch {batch}; {workers} loader worker(s)")
    rows = []
    for name in args.datasets:
        if args.root:
            files = sorted(p for p in args.root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif",
                                                                                   ".tiff", ".bmp"})[:args.images]
        else:
            files = [args.images_dir / name / p for p in write_like(args.images_dir / name, name, args.images)]
        rows.append(dataset_row(name, files, split, model_ms, workers, args.repeats))
    finish(args, "decode_cost", f"decode vs model per image ({args.encoder} on {device}, single core decode)", rows,
           info, model_ms_per_image=model_ms, batch_size=batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
