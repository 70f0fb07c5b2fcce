"""Data-parallel training under ``torchrun``: process group, sampler, rank-0 duties.

``torchrun --nproc_per_node N -m caltech_edge.cli train ...`` sets ``RANK``/``WORLD_SIZE``;
:func:`init` then joins the group (gloo on CPU, nccl on GPUs). Every rank trains on its
shard (DistributedSampler); gradients are averaged by DistributedDataParallel; only rank 0
writes checkpoints, weights, metrics and plots. Without those variables everything here is
a no-op, so a single process runs exactly the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init() -> DistContext:
    """Join the torchrun process group if there is one (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    ctx = DistContext(
        rank=int(os.environ["RANK"]),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    # Share the machine's cores between the local processes instead of oversubscribing.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // ctx.local_world_size))
    return ctx


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum(ctx: DistContext, values: np.ndarray) -> np.ndarray:
    """Element-wise sum of ``values`` over all ranks (float64)."""
    if not ctx.enabled:
        return values
    tensor = torch.from_numpy(np.asarray(values, dtype=np.float64).copy())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.numpy()


def broadcast_object(ctx: DistContext, obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed, else ``model`` itself."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.local_rank] if torch.cuda.is_available() else None
    return DistributedDataParallel(model, device_ids=device_ids)
