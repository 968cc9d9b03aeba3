"""Extraction throughput: the whole pipeline against the bare model forward on the same batches.

Why: embedding a dataset should cost what the model costs, not the decoding, copying and
writing around it (target: the full pipeline at >= 0.9 of the bare forward's images/s).

- full pipeline: ``extract_embeddings`` into a fresh cache folder each time: decode,
  preprocess, transfer, forward, cache write (files in the OS page cache after the warm-up);
- from the pixel cache: the same, for a second encoder of the same geometry once the
  pre-resized copy exists (``--pixel-cache`` in ``hemabench run``), so nothing is decoded;
- bare forward: the same model, batch size, autocast and layout on batches already made and
  already on the device, synchronised at the end.

Images are stand-ins with a real dataset's format and size (``--like``, see _inputs.py).
Medians over ``--repeats`` after one warm-up of each.

    python benchmarks/perf/extraction_throughput.py [--encoder resnet18-random] [--random-weights]
        [--like acevedo] [--images 512] [--repeats 3] [--batch-size auto] [--workers N]
        [--device auto] [--compile] [--json FILE]

On a GPU: --encoder dinobloom-s dinobloom-b dinobloom-g --random-weights --images 4096.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

import torch  # noqa: E402
from _common import add_json_option, finish, machine, machine_line, median_seconds  # noqa: E402
from _inputs import LAYOUTS, load_benchmark_encoder, write_like  # noqa: E402

from hemabench.cli.run import batch_size as parse_batch_size  # noqa: E402
from hemabench.compute.device import resolve_device  # noqa: E402
from hemabench.datasets.records import make_records  # noqa: E402
from hemabench.embeddings import extract_embeddings  # noqa: E402
from hemabench.embeddings.accel import prepare_model  # noqa: E402
from hemabench.embeddings.pixels import split_transform  # noqa: E402


def made_batches(encoder, root: Path, paths: list[str], batch_size: int, device: torch.device) -> list[torch.Tensor]:
    """The model's inputs, preprocessed exactly as the pipeline does, already on the device."""
    from PIL import Image

    split = split_transform(encoder.transform)
    batches = []
    for start in range(0, len(paths), batch_size):
        images = [Image.open(root / p).convert("RGB") for p in paths[start:start + batch_size]]
        if split is None:
            batch = torch.stack([encoder.transform(image) for image in images]).to(device)
        else:
            batch = split.normalise(torch.stack([split.pixels(image) for image in images]).to(device))
        batches.append(batch)
    return batches


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, name: str, root: Path, records) -> dict:
    encoder = load_benchmark_encoder(name, args.random_weights)
    work = Path(tempfile.mkdtemp(prefix="hemabench-throughput-"))
    runs = iter(range(10**6))

    def pipeline(pixel_cache: bool = False) -> object:
        run = next(runs)
        if pixel_cache:  # a different encoder identity (fresh embeddings), same geometry (pixels reused)
            encoder.weights_sha256 = f"{encoder.weights_sha256.split('#')[0]}#{run}"
        embeddings, stats = extract_embeddings(
            encoder, root, records, cache_base=work / f"embeddings-{run}", pixel_base=work / "pixels",
            batch_size=args.batch_size, workers=args.workers, device=args.device, progress=False,
            compile=args.compile, pixel_cache=pixel_cache)
        assert stats.images_forwarded == len(records)
        pipeline.stats = stats
        return embeddings

    full, full_times = median_seconds(pipeline, args.repeats, warmup=1, label=f"{name} full pipeline")
    stats = pipeline.stats
    pixels, _ = median_seconds(lambda: pipeline(pixel_cache=True), args.repeats, warmup=1,
                               label=f"{name} from pixel cache")
    device = resolve_device(args.device)
    runner = prepare_model(encoder.model, device, compile=args.compile)
    batches = made_batches(encoder, root, list(records["path"]), stats.batch_size, device)

    def bare() -> None:
        with torch.inference_mode(), runner.autocast:
            for batch in batches:
                runner(batch)
        sync(device)

    forward, _ = median_seconds(bare, args.repeats, warmup=1, label=f"{name} bare forward")
    n = len(records)
    return {"encoder": name + (" (random init)" if args.random_weights else ""), "images": n, "batch size": stats.batch_size, "device": stats.device,
            "settings": ", ".join(f"{k}={v}" for k, v in stats.settings.items() if k != "device"),
            "full img/s": n / full, "pixel-cache img/s": n / pixels, "bare forward img/s": n / forward,
            "full / bare": forward / full, "pixel-cache / bare": forward / pixels,
            "full s (all repeats)": " ".join(f"{t:.2f}" for t in full_times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", nargs="+", default=["resnet18-random"])
    parser.add_argument("--random-weights", action="store_true", help="time the architectures at a seeded init")
    parser.add_argument("--like", default="acevedo", choices=sorted(LAYOUTS), help="image format and size")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=parse_batch_size, default="auto")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: hemabench's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--images-dir", type=Path, default=Path(tempfile.gettempdir()) / "hemabench-perf-images")
    add_json_option(parser)
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info))
    root = args.images_dir / args.like
    paths = write_like(root, args.like, args.images)
    records = make_records([{"path": p, "label": "x"} for p in paths])
    rows = [measure(args, name, root, records) for name in args.encoder]
    finish(args, "extraction_throughput", f"extraction throughput ({args.like}-like images, median of "
           f"{args.repeats})", rows, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
