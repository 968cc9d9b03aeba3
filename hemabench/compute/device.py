"""The one device and precision policy: a ``--device`` string into a torch device, the autocast a forward
runs under, and the default DataLoader workers (extraction, cost measurement, protocols, pretraining)."""

from __future__ import annotations

import os

import torch

from hemabench.errors import HemabenchError


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """auto -> this process's GPU when CUDA is present (``LOCAL_RANK`` under torchrun), else CPU.

    Asking for CUDA on a machine without it is a clear error, not a torch traceback later.
    """
    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HemabenchError("--device cuda was asked for, but PyTorch sees no CUDA device on this machine")
    if device == "cuda":
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device(device)


AUTOCAST_DTYPE = torch.bfloat16  # CUDA forward and training passes run under bf16 autocast; CPU runs float32


def autocast(device: torch.device):
    """The one precision policy (extraction, cost measurement, pretraining): bf16 autocast on CUDA, off elsewhere."""
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPE, enabled=device.type == "cuda")


def autocast_name(device: torch.device) -> str:
    """How ``autocast(device)`` is recorded in a result's settings."""
    return "bfloat16" if device.type == "cuda" else "off"


def default_workers(device: torch.device, resumable: bool = False) -> int:
    """DataLoader workers by default: up to 8 on CUDA; on CPU up to 4 and one core left to the main
    process, or 0 where a run must resume bitwise (pretraining: worker processes reseed their
    augmentations)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cuda":
        return min(8, cores)
    return 0 if resumable else max(0, min(4, cores - 1))
