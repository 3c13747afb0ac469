"""This process's place in a ``torchrun`` job: rank, world size and its share of the lanes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as dist


@dataclass
class Distributed:
    """Rank 0 of 1 without torchrun; under torchrun the process group is joined on creation
    (gloo on CPU, NCCL on CUDA)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls, device: str) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        return cls(dist.get_rank(), world)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def lanes(self, batch_size: int) -> slice:
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} must divide by the {self.world} ranks")
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def gather(self, value: object) -> list[object]:
        """``value`` from every rank, in rank order (just ``[value]`` without torchrun)."""
        if self.world == 1:
            return [value]
        values: list[object] = [None] * self.world
        dist.all_gather_object(values, value)
        return values
