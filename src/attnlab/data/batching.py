"""Length-bucketed batching and the collators that turn items into padded tensors with validity masks.

Dimension key: B batch, S source length, T target / text length.

:class:`BucketBatchSampler` groups examples of similar length so little compute is spent on padding: it
shuffles, cuts the order into pools, sorts each pool by length, slices batches (a fixed count, or as many as
fit a token budget) and shuffles the batches. It is deterministic given ``seed`` and ``set_epoch``.

Collators return dicts of tensors; masks are bool, True on real tokens. Loss targets use -100 for padding:

- :class:`Seq2SeqCollator`: ``src_ids`` (B, S), ``src_valid`` (B, S), ``tgt_in`` (B, T), ``labels`` (B, T),
  ``tgt_valid`` (B, T), ``index`` (B,). Source ``text eos``; target input ``bos text``, labels ``text eos``.
- :class:`ClassificationCollator`: ``ids`` (B, T), ``attention_mask`` (B, T), ``labels`` (B,), ``index`` (B,).
- :class:`LMCollator`: stacks equal-length blocks; pads ragged ones (``attention_mask``, labels -100).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Sampler

from attnlab.data.tokenizer import pad_sequences

IGNORE_INDEX = -100


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices of similar length: ``batch_size`` examples each, or up to ``max_tokens`` padded tokens.

    ``pool_size`` examples (default 50 batches' worth) are sorted together; larger pools pad less but mix
    less. With ``shuffle=False`` the whole data set is sorted by length (best for evaluation; reorder the
    outputs by the collated ``index``).
    """

    def __init__(
        self, lengths: Sequence[int], *, batch_size: int | None = None, max_tokens: int | None = None,
        shuffle: bool = True, drop_last: bool = False, pool_size: int | None = None, seed: int = 0,
    ) -> None:
        if (batch_size is None) == (max_tokens is None):
            raise ValueError("give exactly one of batch_size (examples per batch) or max_tokens (padded tokens)")
        if (batch_size is not None and batch_size < 1) or (max_tokens is not None and max_tokens < 1):
            raise ValueError(f"batch_size / max_tokens must be >= 1, got {batch_size} / {max_tokens}")
        if max_tokens is not None and lengths and max(lengths) > max_tokens:
            raise ValueError(
                f"an example has {max(lengths)} tokens, more than max_tokens={max_tokens}; raise max_tokens "
                "or truncate the data (max_len)"
            )
        self.lengths = list(lengths)
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.pool_size = pool_size or 50 * (batch_size or max(1, max_tokens // max(1, _mean(self.lengths))))
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use a different (reproducible) shuffle for each epoch."""
        self.epoch = epoch

    def _slice(self, order: list[int]) -> list[list[int]]:
        if self.batch_size is not None:
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            return batches
        batches, current, longest = [], [], 0
        for i in order:
            longest_if_added = max(longest, self.lengths[i])
            if current and longest_if_added * (len(current) + 1) > self.max_tokens:
                batches.append(current)
                current, longest_if_added = [], self.lengths[i]
            current.append(i)
            longest = longest_if_added
        if current and not self.drop_last:
            batches.append(current)
        return batches

    def batches(self) -> list[list[int]]:
        """This epoch's batches (computed once per epoch)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        n = len(self.lengths)
        if not self.shuffle:
            batches = self._slice(sorted(range(n), key=self.lengths.__getitem__))
        else:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(n, generator=g).tolist()
            batches = []
            for p in range(0, n, self.pool_size):
                batches.extend(self._slice(sorted(perm[p : p + self.pool_size], key=self.lengths.__getitem__)))
            batches = [batches[k] for k in torch.randperm(len(batches), generator=g).tolist()]
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def _mean(xs: Sequence[int]) -> int:
    return max(1, math.ceil(sum(xs) / len(xs))) if xs else 1


def _as_list(x: Any) -> list[int]:
    return x.tolist() if isinstance(x, Tensor) else list(x)


class Seq2SeqCollator:
    """Pairs ``{"src", "tgt"}`` (id lists without specials) -> padded teacher-forcing tensors (see module doc)."""

    def __init__(self, pad_id: int, bos_id: int, eos_id: int) -> None:
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        src = pad_sequences([_as_list(it["src"]) + [self.eos_id] for it in items], self.pad_id)
        tgt_in = pad_sequences([[self.bos_id] + _as_list(it["tgt"]) for it in items], self.pad_id)
        labels = pad_sequences([_as_list(it["tgt"]) + [self.eos_id] for it in items], self.pad_id)
        return {
            "src_ids": src.ids,  # (B, S)
            "src_valid": src.valid,  # (B, S)
            "tgt_in": tgt_in.ids,  # (B, T)
            "tgt_valid": tgt_in.valid,  # (B, T)
            "labels": labels.ids.masked_fill(~labels.valid, IGNORE_INDEX),  # (B, T)
            "index": torch.tensor([it.get("index", -1) for it in items], dtype=torch.long),  # (B,)
        }


class ClassificationCollator:
    """Examples ``{"ids", "label"}`` -> ``ids`` (B, T), ``attention_mask`` (B, T), ``labels`` (B,), ``index`` (B,)."""

    def __init__(self, pad_id: int, *, padding_side: Literal["right", "left"] = "right") -> None:
        self.pad_id, self.padding_side = pad_id, padding_side

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        batch = pad_sequences([_as_list(it["ids"]) for it in items], self.pad_id, side=self.padding_side)
        return {
            "ids": batch.ids,  # (B, T)
            "attention_mask": batch.valid,  # (B, T)
            "labels": torch.tensor([int(it["label"]) for it in items], dtype=torch.long),  # (B,)
            "index": torch.tensor([it.get("index", -1) for it in items], dtype=torch.long),  # (B,)
        }


class LMCollator:
    """LM items ``{"ids", "labels"}`` -> ``ids`` (B, T), ``labels`` (B, T) and, when ragged, ``attention_mask``."""

    def __init__(self, pad_id: int = 0) -> None:
        self.pad_id = pad_id

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        lengths = {len(it["ids"]) for it in items}
        if len(lengths) == 1 and all(isinstance(it["ids"], Tensor) for it in items):
            return {
                "ids": torch.stack([it["ids"] for it in items]),  # (B, T)
                "labels": torch.stack([it["labels"] for it in items]),  # (B, T)
            }
        ids = pad_sequences([_as_list(it["ids"]) for it in items], self.pad_id)
        labels = pad_sequences([_as_list(it["labels"]) for it in items], self.pad_id)
        return {
            "ids": ids.ids,  # (B, T)
            "attention_mask": ids.valid,  # (B, T)
            "labels": labels.ids.masked_fill(~labels.valid, IGNORE_INDEX),  # (B, T)
        }
