"""Extraction: images -> embeddings, batched, on the best device, streamed into the cache.

One DataLoader serves every chunk still missing; batches never straddle a chunk, so a
resumed run forwards exactly the batches an uninterrupted one would, and ends with
identical embeddings. Images that fail to decode are marked invalid and listed, not fatal.

The GPU is kept busy: workers decode to uint8 pixels (pinned), normalisation runs on the
device, outputs come back by non-blocking copies collected a batch later, and chunks are
written by a background thread. Under ``torchrun`` the missing chunks are shared out
between ranks (see ``distributed``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hemabench.compute.device import default_workers, resolve_device
from hemabench.datasets.sources import FolderImages
from hemabench.embeddings.accel import choose_batch_size, prepare_model
from hemabench.embeddings.cache import CHUNK_SIZE, CacheEntry, Embeddings, cache_key
from hemabench.embeddings.distributed import Ranks, ranks_from_env
from hemabench.embeddings.integrity import entry_lock
from hemabench.embeddings.pixels import PixelCache, SplitTransform, split_transform
from hemabench.errors import HemabenchError
from hemabench.images.check import to_rgb

__all__ = ["ExtractionStats", "RecordImages", "encoder_identity", "extract_embeddings"]


class RecordImages(Dataset):
    """The records' images, preprocessed; a broken file yields a blank image and its reason.

    With a split transform items are uint8 pixels (normalised later, on the device), read from
    the pixel cache for chunks it holds. ``images`` is a folder or an image source (files, or
    rows of arrow files, decoded here, in the worker)."""

    def __init__(self, images, paths: list[str], transform: Callable, split: SplitTransform | None = None,
                 pixels: PixelCache | None = None) -> None:
        self.images, self.paths, self.pixels = image_source(images), paths, pixels
        self.convert = split.pixels if split is not None else transform
        self.blank = torch.zeros_like(self.convert(Image.new("RGB", (64, 64))))
        self._cached: dict[int, bool] = {}  # chunk -> in the pixel cache (one stat per chunk, not per image)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        chunk, row = divmod(i, CHUNK_SIZE)
        if self.pixels is not None and chunk not in self._cached:
            self._cached[chunk] = self.pixels.has_chunk(chunk)
        if self.pixels is not None and self._cached[chunk]:
            image, error = self.pixels.read(chunk, row)
            return image, i, error
        try:
            with self.images.open(self.paths[i]) as image:
                return self.convert(to_rgb(image)), i, ""
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported per file
            return self.blank, i, f"failed to decode: {exc}"


def image_source(images):
    """A folder path becomes a FolderImages source; a source (FolderImages, ArrowImages) stays itself."""
    return FolderImages(Path(images)) if isinstance(images, str | Path) else images


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
    batch_size: int = 0
    settings: dict = field(default_factory=dict)  # device, autocast, channels-last, compiled, ranks


def _chunk_batches(chunks: list[int], n: int, batch_size: int) -> list[list[int]]:
    batches = []
    for c in chunks:
        stop = min(n, (c + 1) * CHUNK_SIZE)
        batches += [list(range(s, min(s + batch_size, stop))) for s in range(c * CHUNK_SIZE, stop, batch_size)]
    return batches


class _ChunkSink:
    """Collects per-row outputs until a chunk is whole, then writes it on a background thread.

    ``on_chunk`` runs in the caller's thread once a chunk is safely on disk."""

    def __init__(self, entry: CacheEntry, pixels: PixelCache | None, paths: list[str], dtype: str,
                 on_chunk: Callable[[int], None] | None) -> None:
        self.entry, self.pixels, self.paths, self.dtype, self.on_chunk = entry, pixels, paths, dtype, on_chunk
        self.rows: dict[int, tuple] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hemabench-cache-writer")
        self.last: tuple[int, Future] | None = None

    def add(self, features: np.ndarray, indices: list[int], errors: list[str], images: torch.Tensor | None) -> None:
        for j, i in enumerate(indices):
            self.rows[i] = (features[j], errors[j], None if images is None else images[j])
        chunk = indices[0] // CHUNK_SIZE
        span = range(chunk * CHUNK_SIZE, min(len(self.paths), (chunk + 1) * CHUNK_SIZE))
        if all(i in self.rows for i in span):
            self._flush(chunk, [self.rows.pop(i) for i in span])

    def _flush(self, chunk: int, rows: list[tuple]) -> None:
        self._wait()
        self.last = (chunk, self.pool.submit(self._write, chunk, rows))

    def _write(self, chunk: int, rows: list[tuple]) -> None:
        errors = [err for _, err, _ in rows]
        if self.pixels is not None and not self.pixels.has_chunk(chunk):
            self.pixels.write_chunk(chunk, torch.stack([img for _, _, img in rows]).numpy(), errors)
        failed = {self.paths[chunk * CHUNK_SIZE + j]: err for j, err in enumerate(errors) if err}
        self.entry.write_chunk(chunk, np.stack([f for f, _, _ in rows]).astype(self.dtype),
                               np.array([not err for err in errors]), failed)

    def _wait(self) -> None:
        if self.last is not None:
            chunk, future = self.last
            self.last = None
            future.result()
            if self.on_chunk is not None:
                self.on_chunk(chunk)

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self.pool.shutdown(wait=True)


def _forward_chunks(encoder, root, paths: list[str], chunks: list[int], sink: _ChunkSink, *,
                    split: SplitTransform | None, runner, batch_size: int | str, workers: int | None,
                    desc: str, progress: bool) -> tuple[int, int]:
    """Embed the given chunks; returns (images forwarded, batch size used)."""
    dataset = RecordImages(root, paths, encoder.transform, split, sink.pixels)
    size = choose_batch_size(batch_size, runner, _as_input(split, dataset.blank.unsqueeze(0))[0], CHUNK_SIZE)
    batches = _chunk_batches(chunks, len(paths), size)
    workers = default_workers(runner.device) if workers is None else workers
    cuda = runner.device.type == "cuda"
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=cuda,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)
    keep_pixels = sink.pixels is not None
    in_flight: deque = deque()  # outputs whose device-to-host copies may still be running
    bar = tqdm(total=sum(len(b) for b in batches), unit="img", desc=desc, disable=not progress, leave=False)

    def collect(item) -> None:
        host, event, indices, errors, images = item
        if event is not None:
            event.synchronize()
        sink.add(host.numpy(), indices, list(errors), images)
        bar.update(len(indices))

    forwarded = 0
    with torch.inference_mode(), runner.autocast:
        for images, indices, errors in loader:
            batch = _as_input(split, images.to(runner.device, non_blocking=True))
            out = runner(batch)
            if out.ndim != 2 or out.shape[1] != encoder.spec.embed_dim:
                raise ValueError(f"encoder {encoder.spec.name} returned shape {tuple(out.shape)}, "
                                 f"its spec says embed_dim {encoder.spec.embed_dim}")
            host = out.float().to("cpu", non_blocking=cuda)
            event = torch.cuda.Event() if cuda else None
            if event is not None:
                event.record()
            in_flight.append((host, event, indices.tolist(), errors, images if keep_pixels else None))
            forwarded += len(indices)
            while len(in_flight) > 2 or (in_flight and (in_flight[0][1] is None or in_flight[0][1].query())):
                collect(in_flight.popleft())
        while in_flight:
            collect(in_flight.popleft())
    bar.close()
    return forwarded, size


def _as_input(split: SplitTransform | None, images: torch.Tensor) -> torch.Tensor:
    """A batch as the model takes it: uint8 pixels are normalised here, on the batch's device."""
    return images if split is None else split.normalise(images)


def extract_embeddings(encoder, root, records: pd.DataFrame, *, dataset: str = "",
                       batch_size: int | str = "auto", workers: int | None = None, device: str = "auto",
                       dtype: str = "float16", cache_base: Path | None = None, progress: bool = True,
                       on_chunk: Callable[[int], None] | None = None, compile: bool = False,
                       pixel_cache: bool = False, pixel_base: Path | None = None) -> tuple[Embeddings, ExtractionStats]:
    """Embeddings for ``records`` from the cache, computing only the chunks that are missing.

    ``pixel_cache`` keeps (and reuses) a pre-resized uint8 copy of the images, so a second
    encoder with the same geometry decodes nothing; it never changes the numbers."""
    start = time.perf_counter()
    root = image_source(root)  # a folder, or the records' image source (files or arrow rows)
    paths = list(records["path"])
    digest = root.digest(records["path"])
    key = cache_key(encoder_identity(encoder), digest, dtype)
    entry = CacheEntry(key, cache_base)
    cached = entry.load_or_discard() if entry.complete else None
    if cached is not None:
        return cached, ExtractionStats(key, 0, True, time.perf_counter() - start, "none")
    torch_device = resolve_device(device)
    ranks = ranks_from_env(torch_device.type == "cuda")
    with entry_lock(entry.dir, exclusive=ranks.world == 1):  # torchrun ranks share the entry by design
        cached = entry.load_or_discard() if entry.complete else None  # a concurrent run may have finished it
        if cached is not None:
            return cached, ExtractionStats(key, 0, True, time.perf_counter() - start, "none")
        return _extract_missing(encoder, root, paths, digest, entry, ranks, start, dataset=dataset,
                                batch_size=batch_size, workers=workers, device=device, dtype=dtype,
                                progress=progress, on_chunk=on_chunk, compile=compile, pixel_cache=pixel_cache,
                                pixel_base=pixel_base)


def _extract_missing(encoder, root: Path, paths: list[str], digest: str, entry: CacheEntry, ranks: Ranks,
                     start: float, *, dataset: str, batch_size, workers, device: str, dtype: str, progress: bool,
                     on_chunk, compile: bool, pixel_cache: bool, pixel_base) -> tuple[Embeddings, ExtractionStats]:
    key = entry.key
    torch_device = resolve_device(device, ranks.local_rank)
    n_chunks = math.ceil(len(paths) / CHUNK_SIZE)
    mine = ranks.shard([c for c in range(n_chunks) if not entry.has_chunk(c)])
    split = split_transform(encoder.transform)
    pixels = PixelCache(digest, split.identity(), pixel_base) if pixel_cache and split is not None else None
    runner = prepare_model(encoder.model, torch_device, compile=compile)
    sink = _ChunkSink(entry, pixels, paths, dtype, on_chunk)
    forwarded, size = 0, 0
    try:
        if mine:
            desc = f"{encoder.spec.name} on {dataset or root.describe()}" + (f" [rank {ranks.rank}]" if ranks.world > 1 else "")
            forwarded, size = _forward_chunks(encoder, root, paths, mine, sink, split=split, runner=runner,
                                              batch_size=batch_size, workers=workers, desc=desc, progress=progress)
    finally:
        sink.close()
    total = ranks.total(forwarded)
    extraction = {"images": total, "seconds": time.perf_counter() - start,  # encoder_cost reads it
                  "device": str(torch_device)}
    _assemble(entry, ranks, paths, n_chunks, int(encoder.spec.embed_dim), dtype,
              {"encoder": encoder.spec.name, "dataset": dataset, "weights_sha256": encoder.weights_sha256,
               "root": root.describe(), "extraction": extraction})
    settings = {**runner.describe(), "ranks": ranks.world, "pixel_cache": pixels is not None}
    return entry.load(), ExtractionStats(key, total, False, time.perf_counter() - start,
                                         str(torch_device), size, settings)


def _assemble(entry: CacheEntry, ranks: Ranks, paths: list[str], n_chunks: int, dim: int, dtype: str,
              meta: dict) -> None:
    """Rank 0 assembles once every rank's chunks are on disk; every rank returns when it is done."""
    ranks.barrier()
    missing = [] if not ranks.is_main else [c for c in range(n_chunks) if not entry.has_chunk(c)]
    if not ranks.all_agree(not missing):
        raise HemabenchError(
            f"rank 0 cannot see {len(missing) or 'some'} chunk file(s) of cache entry {entry.dir}: under torchrun "
            "every rank writes its chunks there, so HEMABENCH_CACHE must be a folder all nodes share")
    if ranks.is_main:
        entry.assemble(paths, n_chunks, dim, dtype, meta)
    ranks.barrier()
