"""Key/value caches for incremental decoding.

Dimension key: B batch (batch x beams when beam searching), Hkv key/value heads, Smax cache
capacity, T new positions, Dh head dim.

``KVCache`` is preallocated once (static shapes, friendly to ``torch.compile`` and CUDA graphs):
``update(input_pos, k, v)`` writes the new keys/values at their absolute positions and returns the
whole buffers; which slots are visible is the mask's business (positions not yet written must be
masked out, e.g. with ``position_causal_mask(input_pos, torch.arange(Smax))``).

``CrossAttnCache`` holds the projected encoder keys/values of one cross-attention layer, computed
on the first decoding step and reused after.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class KVCache(nn.Module):
    """Preallocated self-attention cache for one layer: buffers (B, Hkv, Smax, Dh)."""

    k_cache: Tensor
    v_cache: Tensor

    def __init__(
        self,
        batch_size: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    @property
    def max_len(self) -> int:
        return self.k_cache.shape[2]

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (B, Hkv, T, Dh) at positions ``input_pos`` (T,); return the full buffers.

        Returns:
            (k_all, v_all), each (B, Hkv, Smax, Dh).
        """
        if k.shape[2] != input_pos.shape[-1]:
            raise ValueError(
                f"input_pos has {input_pos.shape[-1]} positions but k has T={k.shape[2]} (k {tuple(k.shape)})"
            )
        if k.shape[0] != self.k_cache.shape[0] or k.shape[1] != self.k_cache.shape[1]:
            raise ValueError(
                f"k {tuple(k.shape)} does not fit a cache of shape {tuple(self.k_cache.shape)}"
            )
        self.k_cache.index_copy_(2, input_pos, k.to(self.k_cache.dtype))
        self.v_cache.index_copy_(2, input_pos, v.to(self.v_cache.dtype))
        return self.k_cache, self.v_cache

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (B,) of the batch, in that order (beam search)."""
        self.k_cache.copy_(self.k_cache.index_select(0, index))
        self.v_cache.copy_(self.v_cache.index_select(0, index))

    def reset(self) -> None:
        self.k_cache.zero_()
        self.v_cache.zero_()


class CrossAttnCache:
    """Encoder keys/values of one cross-attention layer, (B, Hkv, S, Dh) each, filled once."""

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    @property
    def filled(self) -> bool:
        return self.k is not None

    def store(self, k: Tensor, v: Tensor) -> None:
        self.k, self.v = k, v

    def reorder(self, index: Tensor) -> None:
        if self.k is not None and self.v is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)
