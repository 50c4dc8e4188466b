"""GPT: a decoder-only Transformer language model in the GPT-2 layout (Radford et al. 2019).

Dimension key: B batch, T query length (new tokens), S key length (T without a cache, Smax with
one), D model width, H heads, Dh head dim, V vocabulary, L layers.

    x      = drop(tok_embed(ids) + pos(position_ids))                    (B, T, D)
    x      = block_l(x) for l in 0 .. L-1   pre-norm EncoderLayer under a causal mask
    logits = lm_head(final_norm(x))                                      (B, T, V)

Each block is ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`` with one fused q/k/v projection and a
GELU (tanh approximation) MLP of width 4D; the LM head shares the token embedding matrix. Positions
are learned absolute embeddings as in GPT-2 by default; ``positional`` may also be "rope", "alibi",
"sinusoidal" or "none" (through :class:`~attnlab.positional.scheme.PositionScheme`).

Masks (True = may attend). Without caches a query attends to keys at or before it; with
``attention_mask`` (B, T) padded keys are hidden too (left padding is supported: callers pass
``position_ids`` such as ``cumsum(mask) - 1`` clamped at 0). With no padding and no cache the fused
kernels get ``is_causal=True`` and no mask tensor. With KV caches, ``input_pos`` (T,) are the cache
slots written this call, ``attention_mask`` (if given) covers all Smax slots, and key slot j is
visible to query slot i iff j <= i and attention_mask[b, j] — unwritten slots are therefore masked.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from attnlab.core.kv_cache import KVCache
from attnlab.core.masks import causal_mask, padding_mask, position_causal_mask
from attnlab.interop.mixin import PretrainedMixin
from attnlab.layers.blocks import BlockConfig, EncoderLayer
from attnlab.layers.embeddings import TokenEmbedding
from attnlab.models.common import count_parameters, init_normal_
from attnlab.models.config import ModelConfig, register_config, register_preset
from attnlab.positional.scheme import POSITION_KINDS, PositionScheme


@register_config
@dataclasses.dataclass
class GPTConfig(ModelConfig):
    """GPT hyper-parameters; defaults are GPT-2 small (124M)."""

    model_type = "gpt"

    vocab_size: int = 50257
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int | None = None  # None: 4 * d_model
    n_kv_heads: int | None = None  # None: n_heads (set fewer for grouped-query attention)
    max_len: int = 1024  # context length (n_positions)
    positional: str = "learned"
    rope_base: float = 10000.0
    dropout: float = 0.1  # residual dropout (resid_pdrop)
    attn_dropout: float | None = None  # attn_pdrop; None: dropout
    embed_dropout: float | None = None  # embd_pdrop; None: dropout
    activation: str = "gelu_tanh"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    bias: bool = True
    tie_embeddings: bool = True
    init_std: float = 0.02
    pad_id: int | None = None
    bos_id: int | None = 50256
    eos_id: int | None = 50256
    backend: str = "sdpa"

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.positional not in POSITION_KINDS:
            raise ValueError(f"unknown positional {self.positional!r}; choose one of {POSITION_KINDS}")
        for name in ("vocab_size", "n_layers", "n_heads", "d_model", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pad_id", "bos_id", "eos_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"{name}={value} lies outside the vocabulary [0, {self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, n_kv_heads=self.n_kv_heads,
            dropout=self.dropout, attn_dropout=self.attn_dropout, activation=self.activation, norm=self.norm,
            norm_eps=self.norm_eps, norm_first=True, bias=self.bias, backend=self.backend,
            ffn_dropout=0.0,  # HF has no dropout inside the MLP, only on its output
        )


register_preset("gpt2", GPTConfig)
register_preset("gpt2-medium", GPTConfig, n_layers=24, n_heads=16, d_model=1024)
register_preset(
    "gpt-tiny", GPTConfig, vocab_size=128, n_layers=2, n_heads=4, d_model=32, max_len=64, dropout=0.0,
    bos_id=127, eos_id=127,
)


class GPT(PretrainedMixin, nn.Module):
    """forward(ids (B, T)) -> logits (B, T, V). See the module docstring for masks and caches."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok_embed = TokenEmbedding(c.vocab_size, c.d_model)
        self.pos = PositionScheme(
            c.positional, d_model=c.d_model, n_heads=c.n_heads, head_dim=c.head_dim, max_len=c.max_len,
            causal=True, rope_base=c.rope_base,
        )
        self.drop = nn.Dropout(c.dropout if c.embed_dropout is None else c.embed_dropout)
        block = c.block_config()
        self.blocks = nn.ModuleList(EncoderLayer(block) for _ in range(c.n_layers))
        self.final_norm = block.norm_layer()
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self._init_weights()
        if c.tie_embeddings:
            self.lm_head.weight = self.tok_embed.weight

    @torch.no_grad()
    def _init_weights(self) -> None:
        """GPT-2 init: normal(0, 0.02), zero biases; residual output projections scaled by 1/sqrt(2L)."""
        init_normal_(self, self.config.init_std)
        residual_std = self.config.init_std / math.sqrt(2 * self.config.n_layers)
        for block in self.blocks:
            nn.init.normal_(block.self_attn.out_proj.weight, std=residual_std)
            nn.init.normal_(block.ffn.fc2.weight, std=residual_std)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Distinct parameters (the tied LM head counted once)."""
        return count_parameters(self, trainable_only=trainable_only)

    def new_kv_caches(
        self, batch_size: int, max_len: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> list[KVCache]:
        """One preallocated (B, Hkv, max_len, Dh) cache per layer."""
        c, w = self.config, self.lm_head.weight
        n_kv = c.n_kv_heads or c.n_heads
        return [
            KVCache(batch_size, n_kv, max_len, c.head_dim, dtype=dtype or w.dtype, device=device or w.device)
            for _ in range(c.n_layers)
        ]

    def _check_inputs(
        self, ids: Tensor, attention_mask: Tensor | None, kv_caches: list[KVCache] | None, input_pos: Tensor | None
    ) -> None:
        if ids.dim() != 2:
            raise ValueError(f"ids must be (B, T) token ids, got shape {tuple(ids.shape)}")
        if kv_caches is not None:
            if len(kv_caches) != self.config.n_layers:
                raise ValueError(f"need one KV cache per layer ({self.config.n_layers}), got {len(kv_caches)}")
            if input_pos is None or input_pos.shape != (ids.shape[1],):
                got = None if input_pos is None else tuple(input_pos.shape)
                raise ValueError(
                    f"with kv_caches, pass input_pos of shape ({ids.shape[1]},): the cache slots of the new "
                    f"tokens, e.g. torch.arange(T) for the prompt; got {got}"
                )
        if attention_mask is not None:
            S = ids.shape[1] if kv_caches is None else kv_caches[0].max_len
            if attention_mask.shape != (ids.shape[0], S):
                what = "T" if kv_caches is None else "Smax"
                raise ValueError(
                    f"attention_mask must be (B, S) = {(ids.shape[0], S)} (S = {what}), "
                    f"got {tuple(attention_mask.shape)}"
                )

    def _masks(
        self, T: int, device: torch.device, attention_mask: Tensor | None,
        kv_caches: list[KVCache] | None, input_pos: Tensor,
    ) -> tuple[Tensor | None, Tensor, bool]:
        """(mask (B|1, 1, T, S) or None, key positions (S,), is_causal) for every layer."""
        if kv_caches is None:
            k_pos = input_pos
            if attention_mask is None:
                return None, k_pos, True  # fused causal kernels, no mask tensor
            mask = causal_mask(T, device=device) & padding_mask(attention_mask)  # (B, 1, T, T)
            return mask, k_pos, False
        k_pos = torch.arange(kv_caches[0].max_len, device=device)  # (Smax,)
        mask = position_causal_mask(input_pos, k_pos)  # (1, 1, T, Smax)
        if attention_mask is not None:
            mask = mask & padding_mask(attention_mask)  # (B, 1, T, Smax)
        return mask, k_pos, False

    def _run(
        self, ids: Tensor, attention_mask: Tensor | None, position_ids: Tensor | None,
        kv_caches: list[KVCache] | None, input_pos: Tensor | None, hidden: list[Tensor] | None,
    ) -> Tensor:
        """The shared body of forward and forward_with_hidden; appends to ``hidden`` when given."""
        self._check_inputs(ids, attention_mask, kv_caches, input_pos)
        T = ids.shape[1]
        if input_pos is None:
            input_pos = torch.arange(T, device=ids.device)  # (T,)
        positions = input_pos if position_ids is None else position_ids  # (T,) or (B, T)
        mask, k_pos, is_causal = self._masks(T, ids.device, attention_mask, kv_caches, input_pos)
        x = self.tok_embed(ids)  # (B, T, D)
        absolute = self.pos.absolute(positions)
        if absolute is not None:
            x = x + absolute.to(x.dtype)
        x = self.drop(x)
        bias, rope = self.pos.attn_bias(input_pos, k_pos), self.pos.rotary(positions)
        for i, block in enumerate(self.blocks):
            if hidden is not None:
                hidden.append(x)
            x = block(
                x, mask=mask, bias=bias, rope=rope, kv_cache=None if kv_caches is None else kv_caches[i],
                input_pos=input_pos if kv_caches is not None else None, is_causal=is_causal,
            )  # (B, T, D)
        x = self.final_norm(x)
        if hidden is not None:
            hidden.append(x)
        return self.lm_head(x)  # (B, T, V)

    def forward(
        self,
        ids: Tensor,
        *,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_caches: list[KVCache] | None = None,
        input_pos: Tensor | None = None,
    ) -> Tensor:
        """ids (B, T) -> logits (B, T, V).

        Args:
            attention_mask: (B, S) bool, True on real tokens; S = T without caches, Smax with them.
            position_ids: (B, T) or (T,) positions for the embeddings / rotary angles; default input_pos.
            kv_caches: one :class:`KVCache` per layer (from :meth:`new_kv_caches`).
            input_pos: (T,) cache slots of these tokens (required with caches; default arange(T)).
        """
        return self._run(ids, attention_mask, position_ids, kv_caches, input_pos, None)

    def forward_with_hidden(
        self,
        ids: Tensor,
        *,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_caches: list[KVCache] | None = None,
        input_pos: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """(logits (B, T, V), L + 1 hidden states (B, T, D)) in HF's convention: the embedding output,
        the input of every later block, and the last block's output after the final norm."""
        hidden: list[Tensor] = []
        logits = self._run(ids, attention_mask, position_ids, kv_caches, input_pos, hidden)
        return logits, hidden
