"""Inputs of the extraction and decode benchmarks: images like the real datasets', encoders.

Codec cost depends on format, size and content, so each stand-in is a rendered synthetic cell
(hemabench.synthetic) scaled to the real dataset's image size and saved in its format
(``shared/reference/datasets.md``): JPEG 250x250 (Matek BM), TIFF 400x400 (Matek blood),
JPEG 360x363 (Acevedo), JPEG 575x575 (Raabin), TIFF 144x144 (AML Hehr), PNG 700x460 (BreakHis).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

LAYOUTS = {  # dataset -> (PIL format, suffix, (width, height))
    "matek-bm": ("JPEG", ".jpg", (250, 250)),
    "matek-blood": ("TIFF", ".tiff", (400, 400)),
    "acevedo": ("JPEG", ".jpg", (360, 363)),
    "raabin": ("JPEG", ".jpg", (575, 575)),
    "aml-hehr": ("TIFF", ".tif", (144, 144)),
    "breakhis": ("PNG", ".png", (700, 460)),
}


def write_like(folder: Path, dataset: str, n: int, seed: int = 0) -> list[str]:
    """``n`` images shaped like ``dataset``'s in ``folder`` (reused when already there); relative paths."""
    from hemabench.synthetic.cells import BM_CLASSES, render_cell

    fmt, suffix, size = LAYOUTS[dataset]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{dataset}_{i:05d}{suffix}"
        if not path.is_file():
            rng = np.random.default_rng([seed, i])
            cell = Image.fromarray(render_cell(list(BM_CLASSES)[i % len(BM_CLASSES)], rng, "bm"), "RGB")
            options = {"quality": 95} if fmt == "JPEG" else {}
            cell.resize(size, Image.Resampling.BICUBIC).save(path, format=fmt, **options)
        paths.append(path.name)
    return paths


def load_benchmark_encoder(name: str, random_weights: bool = False):
    """A registered encoder; with ``random_weights`` its architecture at a seeded initialisation,
    so giant models (DinoBloom-G) can be timed where their weights are not available."""
    from hemabench.encoders import load_encoder

    if not random_weights:
        return load_encoder(name)
    from hemabench.encoders.build import (
        LoadedEncoder,
        apply_readout,
        create_architecture,
        make_transform,
        preprocessing_of,
        seeded,
    )
    from hemabench.encoders.spec import ENCODERS

    spec = ENCODERS.get(name)
    model = seeded(0, lambda: apply_readout(spec, create_architecture(spec))).eval().requires_grad_(False)
    return LoadedEncoder(spec=spec, model=model, transform=make_transform(spec), weights_sha256=f"random-{name}",
                         weights_source="random initialisation (benchmark)", preprocessing=preprocessing_of(spec))
