"""Resumable batch streams: the data position is part of every checkpoint.

Dimension key: B global batch (all processes together), W world size (processes).

The trainer reads training data from a :class:`ResumableBatches` object: iterating it yields the
batches left in the current epoch (dicts of tensors) and then moves to the next epoch;
``state_dict()`` tells where it stands (``epoch``, ``index`` = batches handed out in this epoch,
``seed``) and ``load_state_dict`` puts it back there, so a resumed run sees exactly the batches the
uninterrupted run would have seen. ``batch_spec`` describes the batch size; resuming with a different
one is refused.

:class:`ResumableLoader` is the default for map-style datasets (``len`` and ``__getitem__``): each
epoch is a permutation drawn from ``torch.Generator().manual_seed(seed + epoch)`` (never the global
RNG), cut into global batches of ``batch_size`` — or the batches of a ``batch_sampler`` such as
:class:`attnlab.data.BucketBatchSampler`, whose ``set_epoch`` is called. Under multi-process training
each global batch is split into W contiguous slices, one per rank, so 1 process and W processes see the
same examples per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, default_collate


@runtime_checkable
class ResumableBatches(Protocol):
    """A batch stream whose position can be saved and restored (see the module docstring)."""

    batch_spec: dict[str, int]

    def __iter__(self) -> Iterator[Any]: ...

    def state_dict(self) -> dict[str, int]: ...

    def load_state_dict(self, state: dict[str, int]) -> None: ...


class ResumableLoader:
    """Batches of a map-style ``dataset``, shuffled reproducibly per epoch, resumable mid-epoch.

    Give ``batch_size`` (the global batch: all processes together) or a ``batch_sampler`` (an iterable
    of index lists with an optional ``set_epoch``). ``collate_fn`` turns a list of items into a batch
    (default: torch's ``default_collate``). ``num_workers > 0`` loads in worker processes.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int | None = None,
        batch_sampler: Iterable[Sequence[int]] | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        if (batch_size is None) == (batch_sampler is None):
            raise ValueError("give exactly one of batch_size (global examples per batch) or batch_sampler")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.batch_sampler = dataset, batch_size, batch_sampler
        self.collate_fn = collate_fn or default_collate
        self.shuffle, self.drop_last, self.seed, self.num_workers = shuffle, drop_last, seed, num_workers
        self.epoch, self.index = 0, 0
        self.rank, self.world_size = 0, 1

    @property
    def batch_spec(self) -> dict[str, int]:
        if self.batch_size is not None:
            return {"batch_size": self.batch_size}
        spec = {k: getattr(self.batch_sampler, k) for k in ("batch_size", "max_tokens")}
        return {k: int(v) for k, v in spec.items() if v is not None}

    def set_shard(self, rank: int, world_size: int) -> None:
        """Take slice ``rank`` of ``world_size`` of every global batch (the trainer calls this)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        if self.batch_size is not None and self.batch_size % world_size:
            raise ValueError(
                f"the global batch_size {self.batch_size} does not split evenly over {world_size} processes; "
                f"use a multiple of {world_size}"
            )
        self.rank, self.world_size = rank, world_size

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global batches (index lists) of ``epoch``; the same on every process."""
        if self.batch_sampler is not None:
            if hasattr(self.batch_sampler, "set_epoch"):
                self.batch_sampler.set_epoch(epoch)
            return [list(b) for b in self.batch_sampler]
        n = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        else:
            order = list(range(n))
        bs = self.batch_size
        batches = [order[i : i + bs] for i in range(0, n, bs)]
        if batches and len(batches[-1]) < bs and (self.drop_last or len(batches[-1]) < self.world_size):
            batches.pop()
        return batches

    def _local(self, batch: list[int]) -> list[int]:
        if len(batch) < self.world_size:
            raise ValueError(f"a batch of {len(batch)} examples cannot feed {self.world_size} processes")
        per, extra = divmod(len(batch), self.world_size)
        start = self.rank * per + min(self.rank, extra)
        return batch[start : start + per + (self.rank < extra)]

    def __iter__(self) -> Iterator[Any]:
        batches = self.epoch_batches(self.epoch)
        if not batches:
            raise ValueError(
                f"the training data yields no batch: {len(self.dataset)} examples, batch spec {self.batch_spec}; "
                "use a smaller batch or drop_last=False"
            )
        local = [self._local(b) for b in batches[self.index :]]
        for batch in self._load(local):
            self.index += 1
            yield batch
        self.epoch, self.index = self.epoch + 1, 0

    def _load(self, index_lists: list[list[int]]) -> Iterator[Any]:
        if self.num_workers == 0:
            return (self.collate_fn([self.dataset[i] for i in idx]) for idx in index_lists)
        loader = DataLoader(
            self.dataset, batch_sampler=index_lists, collate_fn=self.collate_fn, num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed + self.epoch),  # never draws from the global RNG
        )
        return iter(loader)

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.epoch_batches(self.epoch))

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"the checkpoint's data seed {state['seed']} differs from this loader's seed {self.seed}")
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
