"""Process-group set-up for one process or ``torchrun`` (env RANK, WORLD_SIZE, LOCAL_RANK).

gloo on CPU, nccl on GPU. All collective helpers are no-ops in a single process.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass
class DistributedContext:
    """Where this process sits in the job, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks (returns a new tensor on the original device)."""
        if not self.is_distributed:
            return tensor
        work = tensor.detach().to(self.device).clone()
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(tensor.device)

    def all_gather_object(self, obj: Any) -> List[Any]:
        if not self.is_distributed:
            return [obj]
        out: List[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.is_distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda:<local_rank> when a GPU is visible, else cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but no GPU is visible")
        return torch.device("cuda", local_rank)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r} (expected auto, cpu or cuda)")


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistributedContext:
    """Read torchrun's environment, pick the device, and join the process group if WORLD_SIZE > 1."""
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    torch_device = resolve_device(device, local_rank)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    backend = None
    if world_size > 1:
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(
                backend=backend,
                init_method="env://",
                rank=rank,
                world_size=world_size,
                timeout=datetime.timedelta(minutes=timeout_minutes),
            )
        logger.info("rank %d/%d (local %d) on %s, backend %s", rank, world_size, local_rank, torch_device, backend)
    return DistributedContext(rank, world_size, local_rank, torch_device, backend)


def wrap_ddp(model: torch.nn.Module, context: DistributedContext, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``model`` in DistributedDataParallel for a multi-process run (its device, gloo or nccl);
    the model itself in a single process."""
    if not context.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[context.device.index] if context.device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


def shutdown_distributed(context: DistributedContext) -> None:
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistributedContext", "init_distributed", "resolve_device", "shutdown_distributed", "wrap_ddp"]
