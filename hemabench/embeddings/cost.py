"""What an encoder costs to run, measured on the run's device: the ``encoder_cost`` block of a result.

Users embed thousands of cells per slide, so a leaderboard should say what each score costs:
parameters, embedding size, forward GFLOPs per image (``torch.utils.flop_counter``, which
counts matrix multiplications, convolutions and attention, not element-wise work), images/s
of the bare forward pass on random input, images/s of the run's extraction (decoding and
resizing included; read back from the embedding cache entry when it was computed earlier,
possibly on another device, which the block then names), and peak memory. Speeds from
different devices are not comparable: every figure carries its device.
"""

from __future__ import annotations

import resource
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from hemabench.compute.device import resolve_device
from hemabench.embeddings.accel import prepare_model
from hemabench.embeddings.cache import CacheEntry
from hemabench.results.provenance import device_description

FORWARD_SECONDS = 1.0  # time budget of the bare-forward measurement (after one warm-up batch)
FORWARD_BATCH = {"cuda": 64, "cpu": 32}
FLOPS_NOTE = ("forward FLOPs of one image counted by torch.utils.flop_counter (matmul, convolution, attention); "
              "work outside torch operators (e.g. numpy feature code) is not counted")


def parameter_count(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def forward_gflops(model: torch.nn.Module, input_size: int, device: torch.device | str = "cpu") -> float | None:
    """GFLOPs of one forward pass of one image (full precision); None when nothing countable ran."""
    sample = torch.zeros(1, 3, input_size, input_size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.to(device)(sample)
    flops = counter.get_total_flops()
    return round(flops / 1e9, 4) if flops > 0 else None


def _peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1), "CUDA max allocated during the forward test"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return round(rss / 2**20, 1), "process peak resident memory (whole run, CPU)"


def forward_throughput(model: torch.nn.Module, input_size: int, device: torch.device,
                       seconds: float = FORWARD_SECONDS) -> dict:
    """Images/s of the bare forward on random input (autocast as in extraction), and peak memory."""
    runner = prepare_model(model, device)
    batch_size = FORWARD_BATCH.get(device.type, 32)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(batch_size, 3, input_size, input_size, generator=generator).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        runner(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode(), runner.autocast:
        step()  # warm-up: allocator, cuDNN autotuning, lazy initialisation
        images, start = 0, time.perf_counter()
        while images == 0 or time.perf_counter() - start < seconds:
            step()
            images += batch_size
        elapsed = time.perf_counter() - start
    memory, kind = _peak_memory(device)
    return {"forward_images_per_s": round(images / elapsed, 2), "forward_batch_size": batch_size,
            "peak_memory_mb": memory, "peak_memory_kind": kind}


def extraction_throughput(stats) -> dict:
    """Images/s of the extraction that made this dataset's embeddings (this run, or the cache entry's record)."""
    if stats is not None and not stats.from_cache and stats.images_forwarded > 0:
        return {"extraction_images_per_s": round(stats.images_forwarded / max(stats.seconds, 1e-9), 2),
                "extraction_images": int(stats.images_forwarded), "extraction_device": stats.device}
    recorded = {}
    if stats is not None:
        entry = CacheEntry(stats.key)
        recorded = (entry.meta() if entry.complete else {}).get("extraction") or {}
    if recorded.get("images") and recorded.get("seconds"):
        return {"extraction_images_per_s": round(recorded["images"] / max(recorded["seconds"], 1e-9), 2),
                "extraction_images": int(recorded["images"]), "extraction_device": str(recorded.get("device"))}
    return {"extraction_images_per_s": None, "extraction_images": 0, "extraction_device": None}


def measure_cost(encoder, device: str | torch.device = "auto") -> dict:
    """The device-level part of ``encoder_cost`` (one measurement per encoder and run)."""
    torch_device = resolve_device(device) if isinstance(device, str) else device
    model, size = encoder.model, int(encoder.spec.input_size)
    throughput = forward_throughput(model, size, torch_device)
    return {"parameters": parameter_count(model), "embedding_dim": int(encoder.spec.embed_dim), "input_size": size,
            "gflops_per_image": forward_gflops(model, size, torch_device), "flops_note": FLOPS_NOTE,
            "device": device_description(str(torch_device)), **throughput}
