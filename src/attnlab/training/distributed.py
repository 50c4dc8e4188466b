"""Multi-process training through torchrun: process-group setup, DDP / FSDP2 wrapping, small collectives.

Dimension key: W world size (processes), R rank.

Launch the same script with ``torchrun --nproc_per_node=W script.py``; torchrun sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` and this module joins the default process group with the gloo
backend on CPU or NCCL on CUDA. Two strategies, both torch's own engines:

- ``"ddp"``: :class:`torch.nn.parallel.DistributedDataParallel` (full replica per process, gradients
  averaged by all-reduce during backward).
- ``"fsdp"``: FSDP2, :func:`torch.distributed.fsdp.fully_shard`: every element of every
  ``nn.ModuleList`` (the Transformer blocks) becomes its own shard group, then the root module;
  parameters become sharded DTensors and gradients are reduce-scattered (averaged). Rank 0's weights
  are broadcast first, so the processes need not initialize identically. Works with gloo on CPU as
  well as NCCL on GPU.

Checkpoints are written in the full (unsharded) layout through
:mod:`torch.distributed.checkpoint.state_dict`, so a run saved with one strategy resumes under another.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

STRATEGIES = ("auto", "none", "ddp", "fsdp")


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size``; ``strategy`` is "none", "ddp" or "fsdp"."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    strategy: str = "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.strategy != "none"


def launched_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(strategy: str, device: torch.device) -> DistEnv:
    """Join the process group if launched by torchrun (or one is already initialized)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown distributed strategy {strategy!r}; choose one of {STRATEGIES}")
    world = dist.get_world_size() if dist.is_initialized() else launched_world_size()
    if strategy == "none" or (strategy == "auto" and world == 1):
        if world > 1:
            raise ValueError(f"launched with {world} processes but strategy='none'; use 'ddp' or 'fsdp'")
        return DistEnv()
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            raise ValueError(f"strategy {strategy!r} needs a torchrun launch (RANK/WORLD_SIZE unset): "
                             "torchrun --nproc_per_node=N your_script.py")
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    resolved = "ddp" if strategy == "auto" else strategy
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return DistEnv(dist.get_rank(), dist.get_world_size(), local, resolved)


def default_device(local_rank: int = 0) -> torch.device:
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def wrap(model: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    """The module to run forward/backward on: the model itself, DDP around it, or FSDP2-sharded in place."""
    if env.strategy == "ddp":
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if env.strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        with torch.no_grad():  # every rank starts from rank 0's weights, as DDP does (each keeps its shard)
            for t in model.state_dict().values():
                dist.broadcast(t, src=0)
        mesh = init_device_mesh(device.type, (env.world_size,))
        for module in list(model.modules()):
            if isinstance(module, nn.ModuleList):
                for block in module:
                    fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    return model


@contextlib.contextmanager
def gradient_sync(module: nn.Module, env: DistEnv, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce / reduce-scatter on all but the last accumulation micro-batch."""
    if env.strategy == "ddp" and not sync:
        with module.no_sync():
            yield
        return
    if env.strategy == "fsdp":
        module.set_requires_gradient_sync(sync)
    yield


def all_reduce_sum(t: Tensor, env: DistEnv) -> Tensor:
    """Sum ``t`` over processes (in place; identity in a single process)."""
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_agree(ok: bool, env: DistEnv, device: torch.device) -> bool:
    """True iff ``ok`` on every process (a collective: every rank must call it)."""
    if not env.distributed:
        return ok
    flag = torch.tensor([1 if ok else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
