"""Runners: the one place that knows how to call a model during decoding.

Dimension key: B batch (x beams / returned sequences), P prompt length (left padded), S source
length, N new tokens, Smax cache capacity, V vocab.

Every runner has the same three methods, so the search loops never look at the model:

    prefill() -> (B, V)          logits for the first new token
    step(tokens (B,)) -> (B, V)  feed the chosen tokens, get the logits for the next one
    reorder(index (B,))          keep rows ``index`` in that order (beam search)

Decoder-only models take ``ids`` left-padded with a validity mask; position ids count only real
tokens (``cumsum(mask) - 1``), so a padded row sees exactly what it would see alone. Cached runners
preallocate :class:`~attnlab.core.kv_cache.KVCache` buffers and mask by position; encoder-decoder
runners encode once and fill the cross-attention caches on the first decoder call. Uncached
runners recompute the whole prefix each step: slow, but the reference the cached ones must match.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import Tensor, nn

from attnlab.core.kv_cache import KVCache


class Runner(Protocol):
    """What the search loops need from a model."""

    batch_size: int

    def prefill(self) -> Tensor: ...  # (B, V)

    def step(self, tokens: Tensor) -> Tensor: ...  # (B,) -> (B, V)

    def reorder(self, index: Tensor) -> None: ...  # (B,)


def is_encoder_decoder(model: nn.Module) -> bool:
    return callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))


@contextmanager
def last_position_logits(model: nn.Module) -> Iterator[None]:
    """Within the block, the model's ``lm_head`` projects only the last position: (B, T, D) -> (B, 1, D).

    Prefill needs the next-token logits of the last prompt position only; projecting all B * P
    positions onto the vocabulary costs as much as ~P/3 decode steps of GPT-2. Models without an
    ``lm_head`` module run unchanged.
    """
    head = getattr(model, "lm_head", None)
    if not isinstance(head, nn.Module):
        yield
        return

    def keep_last(module: nn.Module, args: tuple) -> tuple | None:
        x = args[0]
        return (x[:, -1:], *args[1:]) if x.dim() == 3 else None  # (B, 1, D)

    handle = head.register_forward_pre_hook(keep_last)
    try:
        yield
    finally:
        handle.remove()


class DecoderOnlyRunner:
    """Shared bookkeeping: prompt (B, P), its validity mask, and each row's next position id."""

    def __init__(self, model: nn.Module, ids: Tensor, valid: Tensor, max_new_tokens: int) -> None:
        self.model, self.ids, self.valid = model, ids, valid.bool()
        self.batch_size, self.prompt_len = ids.shape
        self.max_new_tokens = max_new_tokens
        n_valid = self.valid.sum(dim=1)  # (B,) real prompt tokens per row
        steps = torch.arange(max_new_tokens, device=ids.device)
        self.new_positions = n_valid[:, None] + steps[None, :]  # (B, N) position id of new token t
        self.fed = 0  # tokens fed after the prompt

    def prompt_positions(self) -> Tensor:
        return (self.valid.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, P)

    def next_positions(self) -> Tensor:
        """(B, 1) position ids of the token being fed (a view: no kernel launch)."""
        return self.new_positions[:, self.fed : self.fed + 1]

    def _reorder_rows(self, index: Tensor) -> None:
        self.valid = self.valid.index_select(0, index)
        self.new_positions = self.new_positions.index_select(0, index)


class CachedDecoderOnly(DecoderOnlyRunner):
    """KV-cached decoding: the prompt fills slots 0..P-1, new token t goes to slot P + t."""

    def __init__(
        self, model: nn.Module, ids: Tensor, valid: Tensor, max_new_tokens: int,
        *, caches: list[KVCache] | None = None,
    ) -> None:
        super().__init__(model, ids, valid, max_new_tokens)
        B, P = ids.shape
        self.caches = caches if caches is not None else model.new_kv_caches(B, P + max_new_tokens, device=ids.device)
        smax = self.caches[0].max_len
        if smax < P + max_new_tokens:
            raise ValueError(f"KV caches hold {smax} slots but prompt + new tokens need {P + max_new_tokens}")
        self.slots = torch.arange(smax, device=ids.device)  # (Smax,)
        self.mask = torch.ones(B, smax, dtype=torch.bool, device=ids.device)  # (B, Smax)
        self.mask[:, :P] = self.valid

    def prefill(self) -> Tensor:
        with last_position_logits(self.model):
            logits = self.model(
                self.ids, attention_mask=self.mask, position_ids=self.prompt_positions(),
                kv_caches=self.caches, input_pos=self.slots[: self.prompt_len],
            )  # (B, 1, V)
        return logits[:, -1]  # (B, V)

    def step(self, tokens: Tensor) -> Tensor:
        slot = self.prompt_len + self.fed
        logits = self._forward_one(tokens[:, None], self.slots[slot : slot + 1], self.next_positions())
        self.fed += 1
        return logits

    def _forward_one(self, tokens: Tensor, input_pos: Tensor, position_ids: Tensor) -> Tensor:
        logits = self.model(
            tokens, attention_mask=self.mask, position_ids=position_ids, kv_caches=self.caches, input_pos=input_pos
        )  # (B, 1, V)
        return logits[:, -1]  # (B, V)

    def reorder(self, index: Tensor) -> None:
        for cache in self.caches:
            cache.reorder(index)
        self.mask.copy_(self.mask.index_select(0, index))  # in place: the compiled step holds this buffer
        self._reorder_rows(index)


class UncachedDecoderOnly(DecoderOnlyRunner):
    """The reference: run the model on the whole (B, P + t) sequence at every step."""

    def prefill(self) -> Tensor:
        return self._forward()

    def _forward(self) -> Tensor:
        positions = (self.valid.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, L)
        logits = self.model(self.ids, attention_mask=self.valid, position_ids=positions)  # (B, L, V)
        return logits[:, -1]  # (B, V)

    def step(self, tokens: Tensor) -> Tensor:
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)  # (B, L + 1)
        self.valid = torch.cat([self.valid, self.valid.new_ones(self.batch_size, 1)], dim=1)  # (B, L + 1)
        self.fed += 1
        return self._forward()

    def reorder(self, index: Tensor) -> None:
        self.ids = self.ids.index_select(0, index)
        self._reorder_rows(index)


class EncoderDecoderRunner:
    """Encode the source once; the decoder starts from ``start_id`` and grows one token a step.

    ``expand`` repeats every encoded row that many times (beams / returned sequences) after
    encoding, so the encoder runs once per source.
    """

    def __init__(
        self, model: nn.Module, src: Tensor, src_valid: Tensor, max_new_tokens: int, *, start_id: int, expand: int = 1,
    ) -> None:
        self.model = model
        memory = model.encode(src, src_valid)  # (B0, S, D)
        self.memory = memory.repeat_interleave(expand, dim=0)  # (B, S, D)
        self.src_valid = src_valid.bool().repeat_interleave(expand, dim=0)  # (B, S)
        self.batch_size = self.memory.shape[0]
        self.max_new_tokens = max_new_tokens
        self.start = torch.full((self.batch_size, 1), start_id, dtype=torch.long, device=src.device)  # (B, 1)
        self.fed = 0


class CachedEncoderDecoder(EncoderDecoderRunner):
    """Self-attention KV caches (Smax = 1 + N) plus cross-attention caches filled on the first call."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.caches = self.model.new_kv_caches(self.batch_size, 1 + self.max_new_tokens, device=self.memory.device)
        self.cross_caches = self.model.new_cross_caches()
        self.slots = torch.arange(1 + self.max_new_tokens, device=self.memory.device)

    def _decode(self, tokens: Tensor) -> Tensor:
        slot = self.fed
        logits = self.model.decode(
            tokens, self.memory, self.src_valid, kv_caches=self.caches, cross_caches=self.cross_caches,
            input_pos=self.slots[slot : slot + 1],
        )  # (B, 1, V)
        return logits[:, -1]  # (B, V)

    def prefill(self) -> Tensor:
        return self._decode(self.start)

    def step(self, tokens: Tensor) -> Tensor:
        self.fed += 1
        return self._decode(tokens[:, None])

    def reorder(self, index: Tensor) -> None:
        # rows only move within one source's beams, which share memory and cross caches
        for cache in self.caches:
            cache.reorder(index)


class UncachedEncoderDecoder(EncoderDecoderRunner):
    """The reference: decode the whole target prefix at every step (memory still computed once)."""

    def prefill(self) -> Tensor:
        self.tgt = self.start  # (B, 1)
        return self.model.decode(self.tgt, self.memory, self.src_valid)[:, -1]  # (B, V)

    def step(self, tokens: Tensor) -> Tensor:
        self.tgt = torch.cat([self.tgt, tokens[:, None]], dim=1)  # (B, t + 1)
        self.fed += 1
        return self.model.decode(self.tgt, self.memory, self.src_valid)[:, -1]  # (B, V)

    def reorder(self, index: Tensor) -> None:
        self.tgt = self.tgt.index_select(0, index)
