"""``hemabench pretrain``: train an encoder with SimCLR, SwAV, DINO, SupCon or MPCS."""

from __future__ import annotations

import argparse
from pathlib import Path

from hemabench.cli.options import device_name, folder_path, worker_count

METHOD_NAMES = ("simclr", "swav", "dino", "supcon", "mpcs")  # kept here so --help does not import torch


def add_parser(commands) -> None:
    p = commands.add_parser("pretrain", help="pretrain an encoder (SimCLR, SwAV, DINO, SupCon, MPCS); "
                            "evaluate it with `run --encoder local:DIR`")
    p.add_argument("--method", required=True, choices=METHOD_NAMES)
    p.add_argument("--dataset", required=True, metavar="D", help="a registered dataset, e.g. synth-bm or breakhis")
    p.add_argument("--root", metavar="DIR", help="this dataset's folder itself (or its parent)")
    p.add_argument("--data-root", metavar="DIR", help="folder holding each dataset under its canonical folder name "
                   "(default: $HEMABENCH_DATA)")
    p.add_argument("--arch", default="resnet18", help="timm architecture, randomly initialised (default: resnet18)")
    p.add_argument("--epochs", type=int, default=20, metavar="N", help="(default: 20; 0 writes the initialisation)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="(default: 64)")
    p.add_argument("--image-size", type=int, default=64, metavar="PX",
                   help="training and evaluation input size (default: 64, small enough for a CPU)")
    p.add_argument("--max-images", type=int, metavar="N", help="train on a seeded random subset of N images")
    p.add_argument("--pairs", default="ordered", choices=("fixed", "ordered", "random"),
                   help="MPCS magnification pair strategy (default: ordered)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=folder_path, metavar="DIR", help="output folder, also the encoder (default: "
                   "pretrained/<method>-<dataset>-<arch>-<px>px-s<seed>); re-running resumes it")
    p.add_argument("--device", type=device_name, default="auto", help="auto (CUDA with bf16 autocast when present), cpu or cuda")
    p.add_argument("--workers", type=worker_count, metavar="N", help="DataLoader workers (default: 0 on CPU, by cores on CUDA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-epochs", type=int, help=argparse.SUPPRESS)  # test hook: simulated interruption
    p.set_defaults(handler=run_pretrain)


def run_pretrain(args) -> int:
    from hemabench.datasets import DATASETS
    from hemabench.pretrain import METHODS, PretrainConfig, pretrain

    config = PretrainConfig(
        method=args.method, dataset=args.dataset, out=Path(args.out) if args.out else None, root=args.root,
        data_root=args.data_root, arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
        image_size=args.image_size, seed=args.seed, max_images=args.max_images, pairs=args.pairs, lr=args.lr,
        device=args.device, workers=args.workers, progress=not args.no_progress,
        stop_after_epochs=args.stop_after_epochs)
    if METHODS[args.method].needs_labels:
        print(f"note: {args.method} trains on the dataset's labels; probing the same dataset afterwards is not a "
              f"fair comparison with self-supervised encoders")
    result = pretrain(config, log=print)
    if result.history:
        first, last = result.history[0], result.history[-1]
        print(f"loss: epoch 1 mean {first['loss']:.4f} (first batch {first['first_batch']:.4f}) -> "
              f"epoch {last['epoch']} mean {last['loss']:.4f}")
    suite = " --suite demo" if DATASETS.get(args.dataset).embedded else ""  # `full` holds only data-root datasets
    print(f"encoder {result.encoder_name} ({result.epochs_done}/{args.epochs} epochs) in {result.out}/; evaluate it "
          f"with:\n  hemabench run --encoder local:{result.out}{suite}")
    return 0
