"""Multi-process training: torchrun environment, DistributedDataParallel, and the launcher.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the trainer joins a process group: NCCL on
GPUs, Gloo on CPUs. Only rank 0 writes the run folder; each rank samples its own patches.
``dcaseg train --gpus N`` re-runs itself through ``python -m torch.distributed.run``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..inference.devices import usable_cores


@dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(use_cuda: bool) -> DistContext:
    """Join the torchrun process group if this process was started by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ctx


def wrap(network: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``network`` when distributed, else ``network`` itself."""
    if not ctx.enabled:
        return network
    ids = [device.index if device.index is not None else ctx.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(network, device_ids=ids)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def any_rank(ctx: DistContext, flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (e.g. a stop request)."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_floats(ctx: DistContext, values: Sequence[float], device: torch.device) -> list[list[float]]:
    """Every rank's ``values`` (rank order), on every rank."""
    if not ctx.enabled:
        return [[float(v) for v in values]]
    local = torch.tensor(list(values), dtype=torch.float64, device=device)
    parts = [torch.zeros_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(parts, local)
    return [p.tolist() for p in parts]


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(argv: Sequence[str], processes: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run ``dcaseg train argv`` in ``processes`` torchrun processes.

    Each process gets its share of the usable cores as OpenMP threads (unless the user set them).
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "dcaseg", "train", *argv]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", str(max(1, usable_cores() // processes))))
    return command, env


def launch(argv: Sequence[str], processes: int) -> int:
    """Run ``dcaseg train argv`` in ``processes`` processes through torchrun; returns its exit code."""
    command, env = torchrun_command(argv, processes)
    return subprocess.call(command, env=env)
