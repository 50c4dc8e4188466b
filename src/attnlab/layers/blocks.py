"""Transformer blocks: residual sublayers with pre- or post-normalization, and the layer stacks.

Dimension key: B batch, T target length, S source length, D model width.

    post-norm (the 2017 paper, BERT):  x = norm(x + dropout(sublayer(x)))
    pre-norm  (GPT-2, T5, ViT):        x = x + dropout(sublayer(norm(x)))   (+ a final norm)

``EncoderLayer`` is self-attention + feed-forward; with a causal mask it is also the decoder-only
(GPT) block. ``DecoderLayer`` adds cross-attention over the encoder output between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from attnlab.core.kv_cache import CrossAttnCache, KVCache
from attnlab.layers.attention import MultiHeadAttention
from attnlab.layers.feedforward import FeedForward
from attnlab.layers.norms import make_norm


@dataclass
class BlockConfig:
    """Everything one block needs; model configs produce it with ``block_config()``."""

    d_model: int
    n_heads: int
    d_ff: int
    n_kv_heads: int | None = None
    head_dim: int | None = None
    dropout: float = 0.1
    attn_dropout: float | None = None  # defaults to ``dropout``
    ffn_dropout: float | None = None  # inside the feed-forward, after the activation; defaults to ``dropout``
    activation: str = "relu"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    norm_first: bool = False
    bias: bool = True
    attn_scale: float | None = None  # default 1/sqrt(Dh); T5 uses 1.0
    backend: str = "sdpa"
    # cross-attention backend; None: ``backend`` when it is an exact one (naive/sdpa), else "sdpa",
    # since the efficient variants (sliding window, Linformer, Performer) are self-attention patterns
    cross_backend: str | None = None

    def attention(self, *, cross: bool = False) -> MultiHeadAttention:
        backend = self.backend
        if cross:
            backend = self.cross_backend or (backend if backend in ("naive", "sdpa") else "sdpa")
        return MultiHeadAttention(
            self.d_model, self.n_heads, n_kv_heads=self.n_kv_heads, head_dim=self.head_dim, cross=cross,
            bias=self.bias, dropout=self.dropout if self.attn_dropout is None else self.attn_dropout,
            scale=self.attn_scale, backend=backend,
        )

    def norm_layer(self) -> nn.Module:
        return make_norm(self.norm, self.d_model, eps=self.norm_eps, bias=self.bias)

    def feedforward(self) -> FeedForward:
        inner = self.dropout if self.ffn_dropout is None else self.ffn_dropout
        return FeedForward(self.d_model, self.d_ff, activation=self.activation, bias=self.bias, dropout=inner)


class _ResidualBlock(nn.Module):
    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.dropout = nn.Dropout(cfg.dropout)

    def _residual(self, x: Tensor, norm: nn.Module, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))


class EncoderLayer(_ResidualBlock):
    """x (B, T, D) -> (B, T, D): self-attention then feed-forward, each a residual sublayer."""

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__(cfg)
        self.self_attn = cfg.attention()
        self.ffn = cfg.feedforward()
        self.norm1, self.norm2 = cfg.norm_layer(), cfg.norm_layer()

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        kv_cache: KVCache | None = None,
        input_pos: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        def sa(h: Tensor) -> Tensor:
            return self.self_attn(
                h, mask=mask, bias=bias, rope=rope, kv_cache=kv_cache, input_pos=input_pos, is_causal=is_causal
            )[0]

        x = self._residual(x, self.norm1, sa)
        return self._residual(x, self.norm2, self.ffn)


SelfAttentionBlock = EncoderLayer  # the decoder-only (GPT) block is this layer under a causal mask


class DecoderLayer(_ResidualBlock):
    """x (B, T, D), memory (B, S, D) -> (B, T, D): masked self-attn, cross-attn, feed-forward."""

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__(cfg)
        self.self_attn = cfg.attention()
        self.cross_attn = cfg.attention(cross=True)
        self.ffn = cfg.feedforward()
        self.norm1, self.norm2, self.norm3 = cfg.norm_layer(), cfg.norm_layer(), cfg.norm_layer()

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None,
        *,
        self_mask: Tensor | None = None,
        cross_mask: Tensor | None = None,
        self_bias: Tensor | None = None,
        cross_bias: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        kv_cache: KVCache | None = None,
        cross_cache: CrossAttnCache | None = None,
        input_pos: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        def sa(h: Tensor) -> Tensor:
            return self.self_attn(
                h, mask=self_mask, bias=self_bias, rope=rope, kv_cache=kv_cache, input_pos=input_pos,
                is_causal=is_causal,
            )[0]

        def ca(h: Tensor) -> Tensor:
            return self.cross_attn(h, memory, mask=cross_mask, bias=cross_bias, kv_cache=cross_cache)[0]

        x = self._residual(x, self.norm1, sa)
        x = self._residual(x, self.norm2, ca)
        return self._residual(x, self.norm3, self.ffn)


class Encoder(nn.Module):
    """A stack of EncoderLayers, with the final norm that pre-norm stacks need."""

    def __init__(self, cfg: BlockConfig, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(n_layers))
        self.final_norm = cfg.norm_layer() if cfg.norm_first else nn.Identity()

    def forward(self, x: Tensor, *, mask: Tensor | None = None, **kwargs) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask=mask, **kwargs)
        return self.final_norm(x)  # (B, T, D)


class Decoder(nn.Module):
    """A stack of DecoderLayers; caches, when given, are one per layer."""

    def __init__(self, cfg: BlockConfig, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(n_layers))
        self.final_norm = cfg.norm_layer() if cfg.norm_first else nn.Identity()

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None,
        *,
        kv_caches: list[KVCache] | None = None,
        cross_caches: list[CrossAttnCache] | None = None,
        **kwargs,
    ) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(
                x, memory,
                kv_cache=None if kv_caches is None else kv_caches[i],
                cross_cache=None if cross_caches is None else cross_caches[i],
                **kwargs,
            )
        return self.final_norm(x)  # (B, T, D)
