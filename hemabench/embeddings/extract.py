"""Extraction: images -> embeddings, batched, on the best device, streamed into the cache.

One DataLoader serves every chunk still missing; batches never straddle a chunk, so a
resumed run forwards exactly the batches an uninterrupted one would, and ends with
identical embeddings. Images that fail to decode are marked invalid and listed, not fatal.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hemabench.embeddings.cache import CHUNK_SIZE, CacheEntry, Embeddings, cache_key, records_digest


class RecordImages(Dataset):
    """Decoded, preprocessed images of the records; a broken file yields zeros and its reason."""

    def __init__(self, root: Path, paths: list[str], transform: Callable) -> None:
        self.root, self.paths, self.transform = root, paths, transform
        self.blank = torch.zeros_like(transform(Image.new("RGB", (64, 64))))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            with Image.open(self.root / self.paths[i]) as image:
                return self.transform(image.convert("RGB")), i, ""
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported per file
            return self.blank, i, f"failed to decode: {exc}"


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from hemabench.errors import HemabenchError

        raise HemabenchError("--device cuda was asked for, but PyTorch sees no CUDA device on this machine")
    return torch.device(device)


def default_workers(device: torch.device) -> int:
    cores = os.cpu_count() or 1
    return min(8, cores) if device.type == "cuda" else max(0, min(4, cores - 1))


def encoder_identity(encoder) -> dict:
    """What determines an encoder's numbers (the cache key's encoder part)."""
    spec = encoder.spec
    return {"weights_sha256": encoder.weights_sha256, "arch": spec.arch, "arch_kwargs": dict(spec.arch_kwargs or {}),
            "embedding": spec.embedding, "preprocessing": encoder.preprocessing}


@dataclass
class ExtractionStats:
    key: str
    images_forwarded: int
    from_cache: bool
    seconds: float
    device: str


def _chunk_batches(chunks: list[int], n: int, batch_size: int) -> list[list[int]]:
    batches = []
    for c in chunks:
        stop = min(n, (c + 1) * CHUNK_SIZE)
        batches += [list(range(s, min(s + batch_size, stop))) for s in range(c * CHUNK_SIZE, stop, batch_size)]
    return batches


def extract_embeddings(encoder, root: Path, records: pd.DataFrame, *, dataset: str = "", batch_size: int = 64,
                       workers: int | None = None, device: str = "auto", dtype: str = "float16",
                       cache_base: Path | None = None, progress: bool = True,
                       on_chunk: Callable[[int], None] | None = None) -> tuple[Embeddings, ExtractionStats]:
    """Embeddings for ``records`` from the cache, computing only the chunks that are missing."""
    start = time.perf_counter()
    root = Path(root)
    paths = list(records["path"])
    key = cache_key(encoder_identity(encoder), records_digest(root, records["path"]), dtype)
    entry = CacheEntry(key, cache_base)
    if entry.complete:
        return entry.load(), ExtractionStats(key, 0, True, time.perf_counter() - start, "none")
    torch_device = resolve_device(device)
    n_chunks = math.ceil(len(paths) / CHUNK_SIZE)
    todo = [c for c in range(n_chunks) if not entry.has_chunk(c)]
    batches = _chunk_batches(todo, len(paths), batch_size)
    workers = default_workers(torch_device) if workers is None else workers
    loader = DataLoader(RecordImages(root, paths, encoder.transform), batch_sampler=batches, num_workers=workers,
                        pin_memory=torch_device.type == "cuda", persistent_workers=False)
    model = encoder.model.to(torch_device).eval()
    forwarded, pending = 0, {}
    bar = tqdm(total=len(paths), initial=len(paths) - sum(len(b) for b in batches), unit="img",
               desc=f"{encoder.spec.name} on {dataset or root.name}", disable=not progress, leave=False)
    with torch.inference_mode(), torch.autocast(torch_device.type, dtype=torch.bfloat16,
                                                enabled=torch_device.type == "cuda"):
        for images, indices, errors in loader:
            out = model(images.to(torch_device, non_blocking=True)).float().cpu().numpy().astype(dtype)
            if out.ndim != 2 or out.shape[1] != encoder.spec.embed_dim:
                raise ValueError(f"encoder {encoder.spec.name} returned shape {tuple(out.shape)}, "
                                 f"its spec says embed_dim {encoder.spec.embed_dim}")
            forwarded += len(indices)
            bar.update(len(indices))
            for row, i, err in zip(out, indices.tolist(), errors):
                pending[i] = (row, err)
            chunk = indices[0].item() // CHUNK_SIZE
            stop = min(len(paths), (chunk + 1) * CHUNK_SIZE)
            if all(i in pending for i in range(chunk * CHUNK_SIZE, stop)):
                rows = [pending.pop(i) for i in range(chunk * CHUNK_SIZE, stop)]
                failed = {paths[chunk * CHUNK_SIZE + j]: err for j, (_, err) in enumerate(rows) if err}
                entry.write_chunk(chunk, np.stack([r for r, _ in rows]), np.array([not e for _, e in rows]), failed)
                if on_chunk is not None:
                    on_chunk(chunk)
    bar.close()
    dim = int(encoder.spec.embed_dim)
    entry.assemble(paths, n_chunks, dim, dtype, {"encoder": encoder.spec.name, "dataset": dataset,
                                                 "weights_sha256": encoder.weights_sha256, "root": str(root)})
    return entry.load(), ExtractionStats(key, forwarded, False, time.perf_counter() - start, str(torch_device))
