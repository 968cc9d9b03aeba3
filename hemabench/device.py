"""The one place that turns a ``--device`` string into a torch device (extraction, protocols, pretraining)."""

from __future__ import annotations

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
