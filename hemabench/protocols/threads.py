"""Intra-op thread control for small CPU problems."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Run CPU work with ``n`` intra-op threads, restored afterwards. Small matrices (one bag,
    a probe on a few thousand rows) gain nothing from more threads, which lose badly when the cores are shared, and a
    fixed count keeps thread scheduling out of the numbers."""
    before = torch.get_num_threads()
    if n and device.type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
