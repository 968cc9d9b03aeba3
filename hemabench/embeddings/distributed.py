"""Several processes (GPUs, nodes) embedding one dataset together, launched by ``torchrun``.

The cache's chunks are the unit of work: rank r embeds the missing chunks r, r + W, r + 2W, ...
and writes each to the shared cache folder; after a barrier rank 0 checks that every chunk is
there and assembles the entry atomically, and after a second barrier every rank loads it.
Batches are the same as in one process, so the embeddings are too. Multi-node runs need the
cache (``HEMABENCH_CACHE``) on a filesystem all nodes share.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Ranks wait for the slowest one at each barrier; a large dataset on a slow filesystem can take long.
BARRIER_TIMEOUT = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        return items[self.rank::self.world]

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_agree(self, ok: bool) -> bool:
        """True only if ``ok`` holds on every rank (so all ranks fail together, none hangs)."""
        if self.world == 1:
            return ok
        flag = torch.tensor([1 if ok else 0], device=_collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def total(self, value: int) -> int:
        if self.world == 1:
            return value
        count = torch.tensor([value], device=_collective_device())
        dist.all_reduce(count)
        return int(count.item())


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0, or a process not launched by torchrun: the one that reports and writes results."""
    return int(os.environ.get("RANK", "0")) == 0


def ranks_from_env(use_cuda: bool) -> Ranks:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs); a no-op alone."""
    if not launched():
        return Ranks()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=BARRIER_TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank)


def leave_process_group() -> None:
    """End this process's part in a torchrun group, if it joined one (avoids NCCL's leak warning)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
