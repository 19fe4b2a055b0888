"""The search under torchrun: which process this is, its share of a batch, and gradients averaged over all.

Single process on CPU or GPU, or one process per device (DistributedDataParallel; gloo on CPU, nccl on GPU):
the global batch is split between ranks and rank 0 writes everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .net import TRAIN_LAYOUT


@dataclass
class Ranks:
    """This process's place in a torchrun job (rank 0 of 1 when single-process)."""

    rank: int = 0
    world: int = 1
    started_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_ranks(device: str) -> tuple[Ranks, torch.device]:
    """Join the process group torchrun describes in the environment, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world == 1:
        return Ranks(), torch.device(device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        started = True
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        return Ranks(rank, world, started), torch.device("cuda", local)
    return Ranks(rank, world, started), torch.device(device)



def shard(batch: tuple[torch.Tensor, torch.Tensor], ranks: Ranks, device: torch.device):
    lr, hr = batch
    return (lr[ranks.rank :: ranks.world].to(device, memory_format=TRAIN_LAYOUT),
            hr[ranks.rank :: ranks.world].to(device))


def average_grads(params, ranks: Ranks) -> None:
    if ranks.world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= ranks.world


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    if ranks.world == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
