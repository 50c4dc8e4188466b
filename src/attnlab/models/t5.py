"""T5 (Raffel et al. 2020): an encoder-decoder Transformer with relative position biases.

Dimension key: B batch, S source length, T target length (new tokens), K key length (S, T, or the
cache capacity Smax), D model width, H heads, Dh head dim (``head_dim``, T5's d_kv; H * Dh need not
equal D), F feed-forward width, V vocabulary.

    memory = Encoder(drop(E[src]))                      pre-norm RMSNorm blocks, bidirectional bias
    logits = W_out Decoder(drop(E[tgt_in]), memory)     causal self-attention, unidirectional bias

What makes it T5 rather than the 2017 model:

- no absolute positions: each stack learns one scalar per (head, bucket of key - query offset)
  (:class:`~attnlab.positional.T5RelativeBias`); the bias is computed once per forward and added to
  the scores of every layer's self-attention (HF stores it in the first block only). The encoder's
  buckets are bidirectional, the decoder's look backwards only. Cross-attention has no bias.
- RMS-style norm without bias or centering, no biases in any linear layer, and unscaled scores
  (``attn_scale=1.0``: the 1/sqrt(Dh) factor is folded into the initialization).
- one shared embedding ``E`` for encoder and decoder input. T5 v1.0 also ties the LM head to ``E``
  and multiplies the decoder output by D**-0.5 before it; v1.1 unties the head, drops the rescale
  and uses a gated-GELU feed-forward (``activation="geglu"``, tanh-approximated GELU as HF's
  ``gelu_new``).

Masks (True = may attend): source padding (``src_valid``, default ``src_ids != pad_id``) hides
padded keys in encoder self-attention and in cross-attention; padded queries still compute, as in
HF. Decoder self-attention is causal. With KV caches, ``input_pos`` (T,) are the cache slots
written this call; the decoder bias rows are those positions against all Smax slots, and key slot j
is visible to query slot i iff j <= i (unwritten slots are therefore masked).

``decoder_start_id`` is ``pad_id`` (0) and ``eos_id`` is 1, as in every released T5 checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnlab.core.kv_cache import CrossAttnCache, KVCache
from attnlab.core.masks import padding_mask, position_causal_mask
from attnlab.interop.mixin import PretrainedMixin
from attnlab.layers.attention import MultiHeadAttention
from attnlab.layers.blocks import BlockConfig, Decoder, Encoder
from attnlab.layers.embeddings import TokenEmbedding
from attnlab.layers.feedforward import ACTIVATIONS, GATED, FeedForward
from attnlab.models.common import count_parameters
from attnlab.models.config import ModelConfig, register_config, register_preset
from attnlab.positional.relative_bias import T5RelativeBias

T5_ACTIVATIONS = tuple(sorted({*ACTIVATIONS, *GATED}))


@register_config
@dataclasses.dataclass
class T5Config(ModelConfig):
    """T5 hyper-parameters; defaults are t5-small (60.5M parameters)."""

    model_type = "t5"

    vocab_size: int = 32128
    d_model: int = 512
    head_dim: int = 64  # T5's d_kv
    d_ff: int = 2048
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int | None = None  # None: n_encoder_layers
    num_buckets: int = 32  # relative_attention_num_buckets
    max_distance: int = 128  # relative_attention_max_distance
    dropout: float = 0.1
    norm_eps: float = 1e-6
    activation: str = "relu"  # relu: v1.0; geglu: v1.1 ("gated-gelu")
    tie_embeddings: bool = True  # LM head = shared embedding (v1.0)
    scale_decoder_output: bool | None = None  # multiply by d_model**-0.5 before the head; None: tie_embeddings
    init_factor: float = 1.0  # HF's initializer_factor
    pad_id: int = 0
    eos_id: int = 1
    decoder_start_id: int | None = None  # None: pad_id
    backend: str = "sdpa"

    def __post_init__(self) -> None:
        if self.n_decoder_layers is None:
            self.n_decoder_layers = self.n_encoder_layers
        if self.scale_decoder_output is None:
            self.scale_decoder_output = self.tie_embeddings
        if self.decoder_start_id is None:
            self.decoder_start_id = self.pad_id
        for name in ("vocab_size", "d_model", "head_dim", "d_ff", "n_heads", "n_encoder_layers", "n_decoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_buckets < 4 or self.max_distance <= self.num_buckets // 2:
            raise ValueError(
                f"need num_buckets >= 4 and max_distance > num_buckets // 2 for the log-spaced buckets; got "
                f"num_buckets={self.num_buckets}, max_distance={self.max_distance} (T5 uses 32 and 128)"
            )
        if self.activation not in T5_ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {T5_ACTIVATIONS}")
        for name in ("pad_id", "eos_id", "decoder_start_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name}={value} lies outside the vocabulary [0, {self.vocab_size})")

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, head_dim=self.head_dim, dropout=self.dropout,
            activation=self.activation, norm="rmsnorm", norm_eps=self.norm_eps, norm_first=True, bias=False,
            attn_scale=1.0, backend=self.backend,
        )


register_preset("t5-small", T5Config)
register_preset("t5-base", T5Config, d_model=768, d_ff=3072, n_heads=12, n_encoder_layers=12)
register_preset(
    "t5-v1_1-small", T5Config, d_model=512, d_ff=1024, n_heads=6, n_encoder_layers=8, activation="geglu",
    tie_embeddings=False,
)
_TINY = dict(vocab_size=128, d_model=32, head_dim=8, d_ff=64, n_heads=4, n_encoder_layers=2, dropout=0.0)
register_preset("t5-tiny", T5Config, **_TINY)
register_preset("t5-v1_1-tiny", T5Config, **_TINY, activation="geglu", tie_embeddings=False)


class T5Hidden(NamedTuple):
    """What :meth:`T5.forward_with_hidden` returns; the hidden lists follow HF's convention."""

    logits: Tensor  # (B, T, V)
    encoder_hidden: list[Tensor]  # L_enc + 1 of (B, S, D): embeddings, block inputs, final-norm output
    decoder_hidden: list[Tensor]  # L_dec + 1 of (B, T, D)


class T5(PretrainedMixin, nn.Module):
    """forward(src_ids (B, S), tgt_in (B, T), src_valid (B, S) | None) -> logits (B, T, V)."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        if not isinstance(config, T5Config):
            raise ValueError(f"T5 needs a T5Config, got {type(config).__name__}")
        self.config = c = config
        self.shared = TokenEmbedding(c.vocab_size, c.d_model)
        bucket_args = dict(num_buckets=c.num_buckets, max_distance=c.max_distance)
        self.enc_rel_bias = T5RelativeBias(c.n_heads, bidirectional=True, **bucket_args)
        self.dec_rel_bias = T5RelativeBias(c.n_heads, bidirectional=False, **bucket_args)
        block = c.block_config()
        self.encoder = Encoder(block, c.n_encoder_layers)
        self.decoder = Decoder(block, c.n_decoder_layers)
        self.dropout = nn.Dropout(c.dropout)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self._init_weights()
        if c.tie_embeddings:
            self.lm_head.weight = self.shared.weight

    @torch.no_grad()
    def _init_weights(self) -> None:
        """T5's initialization (Mesh TensorFlow, as in HF): normal with fan-in-scaled std."""
        c, f = self.config, self.config.init_factor
        nn.init.normal_(self.shared.weight, std=f)
        nn.init.normal_(self.lm_head.weight, std=f)
        for rel in (self.enc_rel_bias, self.dec_rel_bias):
            nn.init.normal_(rel.embedding.weight, std=f * c.d_model**-0.5)
        inner = c.n_heads * c.head_dim
        for m in self.modules():
            if isinstance(m, MultiHeadAttention):
                q = m.q_proj.weight if m.cross else m.qkv_proj.weight[:inner]
                kv = m.kv_proj.weight if m.cross else m.qkv_proj.weight[inner:]
                nn.init.normal_(q, std=f * (c.d_model * c.head_dim) ** -0.5)
                nn.init.normal_(kv, std=f * c.d_model**-0.5)
                nn.init.normal_(m.out_proj.weight, std=f * inner**-0.5)
            elif isinstance(m, FeedForward):
                for w in (m.fc1, m.gate):
                    if w is not None:
                        nn.init.normal_(w.weight, std=f * c.d_model**-0.5)
                nn.init.normal_(m.fc2.weight, std=f * c.d_ff**-0.5)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Distinct parameters (a tied LM head counted once)."""
        return count_parameters(self, trainable_only=trainable_only)

    # ---------------------------------------------------------------------------------------
    # encoder
    # ---------------------------------------------------------------------------------------

    def _source_valid(self, src_ids: Tensor, src_valid: Tensor | None) -> Tensor:
        if src_ids.dim() != 2:
            raise ValueError(f"src_ids must be (B, S) token ids, got shape {tuple(src_ids.shape)}")
        if src_valid is None:
            return src_ids != self.config.pad_id  # (B, S)
        if src_valid.shape != src_ids.shape:
            raise ValueError(f"src_valid must match src_ids' shape {tuple(src_ids.shape)}, got {tuple(src_valid.shape)}")
        return src_valid.bool()

    def _encode(self, src_ids: Tensor, src_valid: Tensor | None, hidden: list[Tensor] | None) -> Tensor:
        valid = self._source_valid(src_ids, src_valid)
        pos = torch.arange(src_ids.shape[1], device=src_ids.device)  # (S,)
        bias = self.enc_rel_bias(pos, pos)  # (1, H, S, S), shared by every layer
        mask = padding_mask(valid)  # (B, 1, 1, S)
        x = self.dropout(self.shared(src_ids))  # (B, S, D)
        for layer in self.encoder.layers:
            if hidden is not None:
                hidden.append(x)
            x = layer(x, mask=mask, bias=bias)  # (B, S, D)
        x = self.dropout(self.encoder.final_norm(x))
        if hidden is not None:
            hidden.append(x)
        return x

    def encode(self, src_ids: Tensor, src_valid: Tensor | None = None) -> Tensor:
        """src_ids (B, S) -> memory (B, S, D). ``src_valid`` (B, S) defaults to ``src_ids != pad_id``."""
        return self._encode(src_ids, src_valid, None)

    # ---------------------------------------------------------------------------------------
    # decoder
    # ---------------------------------------------------------------------------------------

    def _check_decode(
        self, tgt_in: Tensor, memory: Tensor | None, kv_caches: list[KVCache] | None,
        cross_caches: list[CrossAttnCache] | None, input_pos: Tensor | None,
    ) -> None:
        n = self.config.n_decoder_layers
        if tgt_in.dim() != 2:
            raise ValueError(f"tgt_in must be (B, T) token ids, got shape {tuple(tgt_in.shape)}")
        if memory is not None and (memory.dim() != 3 or memory.shape[0] != tgt_in.shape[0]):
            raise ValueError(f"memory must be (B, S, D) with B={tgt_in.shape[0]}, got {tuple(memory.shape)}")
        for name, caches in (("kv_caches", kv_caches), ("cross_caches", cross_caches)):
            if caches is not None and len(caches) != n:
                raise ValueError(f"need one entry of {name} per decoder layer ({n}), got {len(caches)}")
        if input_pos is not None and input_pos.shape != (tgt_in.shape[1],):
            raise ValueError(
                f"input_pos must be ({tgt_in.shape[1]},): the positions of tgt_in's tokens, got {tuple(input_pos.shape)}"
            )
        if memory is None and (cross_caches is None or not all(cc.filled for cc in cross_caches)):
            raise ValueError("decode needs memory (the encoder output) unless every cross-attention cache is filled")

    def _decode(
        self, tgt_in: Tensor, memory: Tensor | None, src_valid: Tensor | None, kv_caches: list[KVCache] | None,
        cross_caches: list[CrossAttnCache] | None, input_pos: Tensor | None, hidden: list[Tensor] | None,
    ) -> Tensor:
        self._check_decode(tgt_in, memory, kv_caches, cross_caches, input_pos)
        if input_pos is None:
            input_pos = torch.arange(tgt_in.shape[1], device=tgt_in.device)  # (T,)
        k_pos = input_pos if kv_caches is None else torch.arange(kv_caches[0].max_len, device=tgt_in.device)
        self_mask = position_causal_mask(input_pos, k_pos)  # (1, 1, T, K)
        self_bias = self.dec_rel_bias(input_pos, k_pos)  # (1, H, T, K), shared by every layer
        cross_mask = None if src_valid is None else padding_mask(src_valid)  # (B, 1, 1, S)
        x = self.dropout(self.shared(tgt_in))  # (B, T, D)
        for i, layer in enumerate(self.decoder.layers):
            if hidden is not None:
                hidden.append(x)
            x = layer(
                x, memory, self_mask=self_mask, cross_mask=cross_mask, self_bias=self_bias,
                kv_cache=None if kv_caches is None else kv_caches[i],
                cross_cache=None if cross_caches is None else cross_caches[i], input_pos=input_pos,
            )  # (B, T, D)
        x = self.dropout(self.decoder.final_norm(x))
        if hidden is not None:
            hidden.append(x)
        if self.config.scale_decoder_output:
            x = x * self.config.d_model**-0.5
        return self.lm_head(x)  # (B, T, V)

    def decode(
        self,
        tgt_in: Tensor,
        memory: Tensor | None,
        src_valid: Tensor | None,
        *,
        kv_caches: list[KVCache] | None = None,
        cross_caches: list[CrossAttnCache] | None = None,
        input_pos: Tensor | None = None,
    ) -> Tensor:
        """tgt_in (B, T) -> logits (B, T, V).

        Args:
            memory: (B, S, D) encoder output; may be None once every cross cache is filled.
            src_valid: (B, S) bool, True on real source tokens (None: no source padding).
            kv_caches: one :class:`KVCache` per decoder layer (:meth:`new_kv_caches`).
            cross_caches: one :class:`CrossAttnCache` per decoder layer (:meth:`new_cross_caches`).
            input_pos: (T,) absolute positions / cache slots of these tokens (default arange(T)).
        """
        return self._decode(tgt_in, memory, src_valid, kv_caches, cross_caches, input_pos, None)

    def forward(self, src_ids: Tensor, tgt_in: Tensor, src_valid: Tensor | None = None) -> Tensor:
        """Teacher forcing: src_ids (B, S), tgt_in (B, T) (labels shifted right) -> logits (B, T, V)."""
        src_valid = self._source_valid(src_ids, src_valid)
        return self.decode(tgt_in, self.encode(src_ids, src_valid), src_valid)

    def forward_with_hidden(self, src_ids: Tensor, tgt_in: Tensor, src_valid: Tensor | None = None) -> T5Hidden:
        """Logits plus every layer's hidden states of both stacks (for parity tests and interp)."""
        enc: list[Tensor] = []
        dec: list[Tensor] = []
        src_valid = self._source_valid(src_ids, src_valid)
        memory = self._encode(src_ids, src_valid, enc)
        logits = self._decode(tgt_in, memory, src_valid, None, None, None, dec)
        return T5Hidden(logits, enc, dec)

    def new_kv_caches(
        self, batch_size: int, max_len: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> list[KVCache]:
        """One preallocated (B, H, max_len, Dh) self-attention cache per decoder layer."""
        c, w = self.config, self.lm_head.weight
        return [
            KVCache(batch_size, c.n_heads, max_len, c.head_dim, dtype=dtype or w.dtype, device=device or w.device)
            for _ in range(c.n_decoder_layers)
        ]

    def new_cross_caches(self) -> list[CrossAttnCache]:
        """One empty cross-attention cache per decoder layer (filled on the first decode call)."""
        return [CrossAttnCache() for _ in range(self.config.n_decoder_layers)]
