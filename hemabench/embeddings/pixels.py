"""Decoding cost: images become uint8 pixels in workers, and floats only on the device.

An encoder's preprocessing is split in two at its ``ToTensor``: the geometric part (RGB
conversion, resize, crop) runs on PIL images in the DataLoader workers and yields uint8
pixels; scaling to [0, 1] and normalisation run on the batch on the device. The device part
repeats the very same tensor operations ``ToTensor`` + ``Normalize`` perform, so embeddings
are bit-identical to the one-piece transform, while a quarter of the bytes cross to the GPU.

The uint8 pixels are also what the optional pixel cache stores: a pre-resized copy of a
dataset, kept per chunk, shared by every encoder with the same geometry (DinoBloom S/B/L/G,
DINOv2 and UNI all use 224 px bicubic), so a sweep decodes each image once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional

from hemabench.files.atomic import atomic_path, atomic_write_text
from hemabench.files.canonical import canonical_sha256
from hemabench.paths import cache_dir

PIXEL_FORMAT = 1
_TO_TENSOR = {"ToTensor", "MaybeToTensor"}


@dataclass
class SplitTransform:
    """``transform(image) == normalise(to_uint8(geometric(image)))``, bit for bit."""

    geometric: Callable[[Image.Image], Image.Image]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """uint8 (C, H, W) pixels of a decoded image, as ``ToTensor`` would lay them out."""
        array = np.asarray(self.geometric(image), dtype=np.uint8)
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 -> float32, the operations of ``ToTensor`` then ``Normalize``."""
        x = batch.to(dtype=torch.get_default_dtype()).div(255)
        if self.mean is not None:
            x = functional.normalize(x, list(self.mean), list(self.std), inplace=True)
        return x

    def identity(self) -> str:
        return repr(self.geometric)


def split_transform(transform: Callable) -> SplitTransform | None:
    """Split a ``Compose([..., ToTensor, Normalize?])``; None for anything else (kept whole)."""
    steps = list(getattr(transform, "transforms", []))
    names = [type(step).__name__ for step in steps]
    cut = next((i for i, name in enumerate(names) if name in _TO_TENSOR), None)
    if cut is None:
        return None
    rest = steps[cut + 1:]
    if not rest:
        return SplitTransform(transforms.Compose(steps[:cut]), None, None)
    if len(rest) == 1 and isinstance(rest[0], transforms.Normalize) and not rest[0].inplace:
        mean, std = (tuple(float(v) for v in np.atleast_1d(rest[0].mean)),
                     tuple(float(v) for v in np.atleast_1d(rest[0].std)))
        return SplitTransform(transforms.Compose(steps[:cut]), mean, std)
    return None


class PixelCache:
    """Pre-resized uint8 pixels of one record list under one geometry, one file per chunk.

    A chunk is complete when its ``.npy`` exists (written atomically after its ``.json`` of
    decode failures), so a killed run keeps every finished chunk."""

    def __init__(self, records_sha256: str, geometry: str, base: Path | None = None) -> None:
        self.key = canonical_sha256({"format": PIXEL_FORMAT, "records": records_sha256, "geometry": geometry},
                                    spaced=True)[:32]
        self.dir = (base or cache_dir() / "pixels") / self.key
        self.geometry = geometry
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    def array_path(self, chunk: int) -> Path:
        return self.dir / f"chunk_{chunk:06d}.npy"

    def has_chunk(self, chunk: int) -> bool:
        return self.array_path(chunk).is_file()

    def write_chunk(self, chunk: int, pixels: np.ndarray, errors: list[str]) -> None:
        """Store a chunk's pixels (N, C, H, W) and each row's decode error ('' when fine)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "geometry.txt").is_file():
            atomic_write_text(self.dir / "geometry.txt", self.geometry + "\n")
        atomic_write_text(self.dir / f"chunk_{chunk:06d}.json", json.dumps(errors))
        with atomic_path(self.array_path(chunk)) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(pixels, dtype=np.uint8))

    def read(self, chunk: int, row: int) -> tuple[torch.Tensor, str]:
        """One image's pixels (C, H, W) and its decode error; a worker keeps 4 chunks mapped."""
        if chunk not in self._open:
            errors = json.loads((self.dir / f"chunk_{chunk:06d}.json").read_text())
            self._open[chunk] = (np.load(self.array_path(chunk), mmap_mode="r"), errors)
            if len(self._open) > 4:
                self._open.popitem(last=False)
        self._open.move_to_end(chunk)
        pixels, errors = self._open[chunk]
        return torch.from_numpy(np.array(pixels[row])), errors[row]

    def __getstate__(self) -> dict:  # DataLoader workers open their own memory maps
        return {**self.__dict__, "_open": OrderedDict()}
