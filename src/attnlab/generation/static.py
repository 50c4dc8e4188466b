"""The fast decode path: a static KV cache and a compiled, fixed-shape decode step.

Dimension key: B batch, P prompt length, N new tokens, Smax cache capacity, V vocab, D model width.

Every decode step has the same shapes: tokens (B, 1), input_pos (1,), position_ids (B, 1), the
validity mask (B, Smax) over the whole preallocated cache (unwritten slots are hidden by the
position-causal mask). So the step compiles once with ``torch.compile(mode="reduce-overhead")``,
which on CUDA captures it as a CUDA graph: one launch per token instead of hundreds. The caches
and the compiled step are kept per model and reused while (B, Smax, dtype, device) and the weights
stay the same, so repeated ``generate`` calls neither recompile nor re-record. The prompt (prefill)
runs eagerly.

On CPU the step is compiled by inductor (no graphs) and, for float32 models, runs on a *decode twin*
of the model (:mod:`attnlab.generation.packed`): the same parameters, with every ``nn.Linear`` weight
packed once into oneDNN's blocked layout and naive (fusable) attention, because a decode step is
matrix-vector work bound by streaming the weights (the whole step runs 1.2x faster than with MKL on
column-major weights at batch 1, 1.6-1.8x at batch 32, on the 2-core test machine). Without oneDNN, or for other
dtypes, it runs on *column-major copies* of the ``nn.Linear`` weights instead: ``F.linear(x, W)``
computes ``x @ W.T``, and for a few rows of x MKL streams a contiguous ``W.T`` 1.3-1.6x faster than a
row-major ``W``. Either copy costs one extra copy of the projection weights while the fast path is in
use, and is rebuilt when the model's weights change.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from attnlab.core.kv_cache import KVCache
from attnlab.generation.packed import decode_twin, packing_available
from attnlab.generation.runners import CachedDecoderOnly

CACHE_ROUND = 64  # capacity granularity: fewer distinct shapes, fewer recompilations

StepFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclasses.dataclass
class _StaticState:
    key: tuple
    caches: list[KVCache]
    mask: Tensor  # (B, Smax) validity of every cache slot; a fixed buffer the graph reads
    step: StepFn
    runs: nn.Module  # what the step calls: the model itself, or its CPU decode twin (kept alive here)


_STATES: weakref.WeakKeyDictionary[nn.Module, _StaticState] = weakref.WeakKeyDictionary()


def static_capacity(needed: int, context: int | None) -> int:
    """Cache slots for ``needed`` positions: rounded up to CACHE_ROUND, capped at the context."""
    rounded = -(-needed // CACHE_ROUND) * CACHE_ROUND
    return max(needed, min(rounded, context)) if context else rounded


def gemv_weights(model: nn.Module) -> dict[str, Tensor]:
    """{name: W} for every nn.Linear weight, same values and (out, in) shape, stored column-major."""
    return {
        f"{name}.weight": module.weight.detach().t().contiguous().t()
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    }


def weights_version(model: nn.Module) -> tuple:
    """Changes whenever a parameter is replaced or modified in place (e.g. by an optimizer step)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def _compile_step(model: nn.Module, caches: list[KVCache], mask: Tensor, weights: dict[str, Tensor]) -> StepFn:
    for buf in [mask, *(c.k_cache for c in caches), *(c.v_cache for c in caches)]:
        torch._dynamo.mark_static_address(buf)  # fixed addresses: graphs replay against these buffers

    def step(tokens: Tensor, input_pos: Tensor, position_ids: Tensor) -> Tensor:
        kwargs = dict(attention_mask=mask, position_ids=position_ids, kv_caches=caches, input_pos=input_pos)
        logits = functional_call(model, weights, (tokens,), kwargs) if weights else model(tokens, **kwargs)
        return logits[:, -1].float()  # (B, V)

    if mask.is_cuda:
        return torch.compile(step, mode="reduce-overhead", dynamic=False)
    return torch.compile(step, dynamic=False)


def static_state(model: nn.Module, batch_size: int, needed: int, device: torch.device) -> _StaticState:
    """The model's reusable static caches and compiled step for this (B, Smax, dtype, device, weights)."""
    dtype = next(model.parameters()).dtype
    smax = static_capacity(needed, getattr(model.config, "max_len", None))
    key = (batch_size, smax, dtype, str(device), weights_version(model))
    state = _STATES.get(model)
    if state is None or state.key != key:
        _STATES.pop(model, None)  # free the old caches and weight copies first
        caches = model.new_kv_caches(batch_size, smax, dtype=dtype, device=device)
        mask = torch.ones(batch_size, smax, dtype=torch.bool, device=device)  # (B, Smax)
        runs, weights = model, {}
        if device.type == "cpu" and packing_available(dtype):
            runs = decode_twin(model, batch_size)
        elif device.type == "cpu":
            weights = gemv_weights(model)
        state = _StaticState(key, caches, mask, _compile_step(runs, caches, mask, weights), runs)
        _STATES[model] = state
    return state


class StaticDecoderOnly(CachedDecoderOnly):
    """CachedDecoderOnly whose per-token step is the compiled, fixed-shape one.

    The caches and mask belong to the model's static state, so two generations on one model must
    not interleave (e.g. two live streamers with ``compile=True``).
    """

    def __init__(self, model: nn.Module, ids: Tensor, valid: Tensor, max_new_tokens: int) -> None:
        state = static_state(model, ids.shape[0], ids.shape[1] + max_new_tokens, ids.device)
        super().__init__(model, ids, valid, max_new_tokens, caches=state.caches)
        state.mask.copy_(self.mask)
        self.mask = state.mask
        self._compiled = state.step

    def _forward_one(self, tokens: Tensor, input_pos: Tensor, position_ids: Tensor) -> Tensor:
        if tokens.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()
        # clone: the graph's output buffer is overwritten by the next replay
        return self._compiled(tokens, input_pos, position_ids).clone()  # (B, V)
