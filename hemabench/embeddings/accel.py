"""Getting close to what the device allows: placement, memory layout, compilation, batch size.

None of this changes which images go into which batch (batches never straddle a cache chunk),
so a resumed or sharded run computes the same embeddings as a plain one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hemabench.compute.device import autocast, autocast_name
from hemabench.errors import HemabenchError

CPU_BATCH_SIZE = 64  # CPU throughput is flat beyond a few dozen images; memory never binds
MIN_BATCH_SIZE = 1


def conv_heavy(model: nn.Module) -> bool:
    """True when most weights are in 2-d convolutions (ResNets), where channels-last pays on GPUs."""
    conv = sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters(recurse=False))
    total = sum(p.numel() for p in model.parameters())
    return total > 0 and conv / total > 0.5


@dataclass
class DeviceModel:
    """The model as run: where, in which layout, compiled or not, and with which autocast."""

    model: Callable[[torch.Tensor], torch.Tensor]
    eager: nn.Module  # the same model uncompiled: memory trials need no compilation per size
    device: torch.device
    channels_last: bool
    compiled: bool

    @property
    def autocast(self):
        return autocast(self.device)

    def __call__(self, batch: torch.Tensor, eager: bool = False) -> torch.Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return (self.eager if eager else self.model)(batch)

    def describe(self) -> dict:
        return {"device": str(self.device), "autocast": autocast_name(self.device),
                "channels_last": self.channels_last, "compiled": self.compiled}


def prepare_model(model: nn.Module, device: torch.device, compile: bool = False) -> DeviceModel:
    """Move to ``device`` in eval mode; channels-last for conv nets on CUDA; ``torch.compile`` on request."""
    model = model.to(device).eval()
    channels_last = device.type == "cuda" and conv_heavy(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    runner = torch.compile(model, dynamic=False) if compile else model
    return DeviceModel(runner, model, device, channels_last, compile)


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def largest_fitting(trial: Callable[[int], None], limit: int, start: int = 8) -> int:
    """The largest power of two up to ``limit`` (``limit`` itself when it fits) for which ``trial`` does
    not run out of memory. Doubling from ``start``; halving below it when even ``start`` fails."""
    def fits(n: int) -> bool:
        try:
            trial(n)
            return True
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not _out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return False

    n = min(start, limit)
    if not fits(n):
        while n > MIN_BATCH_SIZE:
            n //= 2
            if fits(n):
                return n
        raise HemabenchError(f"even a batch of {MIN_BATCH_SIZE} image does not fit in the device's memory")
    while n < limit:
        bigger = min(2 * n, limit)
        if not fits(bigger):
            break
        n = bigger
    return n


def choose_batch_size(requested: int | str, runner: DeviceModel, sample: torch.Tensor, limit: int) -> int:
    """``auto``: on CUDA the largest batch (up to one cache chunk) whose forward fits in memory;
    on CPU a fixed 64. A number is used as given, capped at the chunk size."""
    if requested != "auto":
        return max(1, min(int(requested), limit))
    if runner.device.type != "cuda":
        return min(CPU_BATCH_SIZE, limit)

    def trial(n: int) -> None:
        batch = sample.unsqueeze(0).expand(n, *sample.shape).to(runner.device, dtype=torch.float32)
        with torch.inference_mode(), runner.autocast:
            runner(batch.contiguous(), eager=True)
        torch.cuda.synchronize(runner.device)

    return largest_fitting(trial, limit)
