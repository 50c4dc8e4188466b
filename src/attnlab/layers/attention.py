"""Multi-head attention: project, split heads, call the one attention function, merge, project.

Dimension key: B batch, T query length, S key length, D model width, H query heads, Hkv key/value
heads (grouped-query attention when Hkv < H), Dh head dim.

Self-attention uses one fused projection producing [q; k; v]; cross-attention projects queries from
x and [k; v] from the context (encoder output). Positions enter either as rotary angles (``rope``)
or as an additive ``bias`` (ALiBi, T5); masks come in ready-made from the model.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from attnlab.core.attention import AttentionBackend, attention
from attnlab.core.kv_cache import CrossAttnCache, KVCache
from attnlab.core.masks import combine_masks
from attnlab.efficient.variant import build_variant
from attnlab.positional.rope import apply_rope

CaptureFn = Callable[..., None]


class MultiHeadAttention(nn.Module):
    """forward(x (B, T, D), context (B, S, D) | None) -> (out (B, T, D), weights (B, H, T, S) | None)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        cross: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        scale: float | None = None,
        backend: str = "sdpa",
    ) -> None:
        super().__init__()
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(
                    f"d_model ({d_model}) must be divisible by n_heads ({n_heads}); "
                    f"try n_heads in {[h for h in range(1, 17) if d_model % h == 0]} or set head_dim"
                )
            head_dim = d_model // n_heads
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        self.d_model, self.n_heads, self.n_kv_heads, self.head_dim = d_model, n_heads, n_kv_heads, head_dim
        self.cross, self.dropout, self.scale, self.backend = cross, dropout, scale, backend
        # an efficient variant spec ("linformer:max_len=512", ...) becomes a submodule holding its parameters
        self.attn_variant = build_variant(backend, head_dim=head_dim, cross=cross)
        q_dim, kv_dim = n_heads * head_dim, n_kv_heads * head_dim
        if cross:
            self.q_proj = nn.Linear(d_model, q_dim, bias=bias)
            self.kv_proj = nn.Linear(d_model, 2 * kv_dim, bias=bias)
        else:
            self.qkv_proj = nn.Linear(d_model, q_dim + 2 * kv_dim, bias=bias)
        self.out_proj = nn.Linear(q_dim, d_model, bias=bias)
        self.capture_fn: CaptureFn | None = None  # interp hook: sees q, k, v, mask, bias, scale

    def _heads(self, x: Tensor, n: int) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, n, self.head_dim).transpose(1, 2)  # (B, n, T, Dh)

    def _project(self, x: Tensor, context: Tensor | None, cache: CrossAttnCache | None):
        kv_dim = self.n_kv_heads * self.head_dim
        if not self.cross:
            q, k, v = self.qkv_proj(x).split([self.n_heads * self.head_dim, kv_dim, kv_dim], dim=-1)
            return self._heads(q, self.n_heads), self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads)
        q = self._heads(self.q_proj(x), self.n_heads)  # (B, H, T, Dh)
        if cache is not None and cache.filled:
            return q, cache.k, cache.v
        if context is None:
            raise ValueError("cross-attention needs a context (the encoder output) on its first call")
        k, v = self.kv_proj(context).split([kv_dim, kv_dim], dim=-1)
        k, v = self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads)  # (B, Hkv, S, Dh)
        if cache is not None:
            cache.store(k, v)
        return q, k, v

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        kv_cache: KVCache | CrossAttnCache | None = None,
        input_pos: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"expected x of shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        cross_cache = kv_cache if isinstance(kv_cache, CrossAttnCache) else None
        q, k, v = self._project(x, context, cross_cache)
        if rope is not None and not self.cross:
            cos, sin = rope
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        backend: str | AttentionBackend = self.backend if self.attn_variant is None else self.attn_variant
        if isinstance(kv_cache, KVCache):
            if input_pos is None:
                raise ValueError("a KVCache needs input_pos, the absolute positions of the new tokens")
            k, v = kv_cache.update(input_pos, k, v)  # (B, Hkv, Smax, Dh)
            if self.attn_variant is not None:  # decode exactly under the variant's pattern (or raise)
                mask, backend = combine_masks(mask, self.attn_variant.decode_mask(input_pos, k.shape[2])), "sdpa"
        if self.capture_fn is not None:
            self.capture_fn(q=q, k=k, v=v, mask=mask, bias=bias, scale=self.scale, is_causal=is_causal, backend=backend)
        out, weights = attention(
            q, k, v, mask, bias, self.scale, self.dropout if self.training else 0.0,
            backend=backend, is_causal=is_causal, need_weights=need_weights,
        )  # (B, H, T, Dh)
        B, _, T, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, H*Dh)
        return self.out_proj(out), weights  # (B, T, D)
