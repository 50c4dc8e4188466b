"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017).

Dimension key: B batch, S source length, T target length, D model width, H heads, V vocabulary.

    memory = Encoder(embed(src) * sqrt(D) + PE)                          (B, S, D)
    logits = W_out Decoder(embed(tgt_in) * sqrt(D) + PE, memory)         (B, T, V)

``tgt_in`` is the target shifted right (``shift_right``). Source padding is masked in the encoder's
self-attention and in cross-attention; the decoder's self-attention is causal. With a shared
vocabulary and ``tie_embeddings`` the source embedding, target embedding and output projection are
one matrix, as in the paper (section 3.4).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from attnlab.core.kv_cache import CrossAttnCache, KVCache
from attnlab.core.masks import causal_mask, combine_masks, padding_mask, position_causal_mask, query_padding_mask
from attnlab.layers.blocks import BlockConfig, Decoder, Encoder
from attnlab.interp.capture import CaptureMixin
from attnlab.layers.embeddings import TokenEmbedding
from attnlab.models.common import count_parameters
from attnlab.models.config import ModelConfig, register_config, register_preset
from attnlab.positional.scheme import PositionScheme


@register_config
@dataclasses.dataclass
class TransformerConfig(ModelConfig):
    model_type = "transformer"

    vocab_size: int = 37000
    tgt_vocab_size: int | None = None  # None: one vocabulary shared by source and target
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    activation: str = "relu"
    norm_first: bool = False  # the paper is post-norm
    norm_eps: float = 1e-5
    max_len: int = 512
    positional: str = "sinusoidal"  # sinusoidal | learned | rope | alibi | t5 | none
    tie_embeddings: bool = True
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    backend: str = "sdpa"

    def __post_init__(self) -> None:
        if self.tgt_vocab_size is None:
            self.tgt_vocab_size = self.vocab_size
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    @property
    def shared_vocab(self) -> bool:
        return self.tgt_vocab_size == self.vocab_size

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, dropout=self.dropout,
            activation=self.activation, norm_eps=self.norm_eps, norm_first=self.norm_first, backend=self.backend,
        )


register_preset("vaswani-base", TransformerConfig)
register_preset(
    "vaswani-big", TransformerConfig, d_model=1024, n_heads=16, d_ff=4096, dropout=0.3
)
register_preset(
    "tiny", TransformerConfig, vocab_size=97, d_model=32, n_heads=4, n_encoder_layers=2,
    n_decoder_layers=2, d_ff=64, max_len=64, dropout=0.0,
)


class Transformer(CaptureMixin, nn.Module):
    """forward(src_ids (B, S), tgt_in (B, T)) -> logits (B, T, V_tgt)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.tie_embeddings and not c.shared_vocab:
            raise ValueError(
                f"tie_embeddings needs one shared vocabulary, got vocab_size={c.vocab_size}, "
                f"tgt_vocab_size={c.tgt_vocab_size}; set tie_embeddings=False"
            )
        self.src_embed = TokenEmbedding(c.vocab_size, c.d_model, scale=True, padding_idx=c.pad_id)
        if c.tie_embeddings:
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, scale=True, padding_idx=c.pad_id)
        head_dim = c.d_model // c.n_heads
        pos = dict(d_model=c.d_model, n_heads=c.n_heads, head_dim=head_dim, max_len=c.max_len)
        self.enc_pos = PositionScheme(c.positional, causal=False, **pos)
        self.dec_pos = PositionScheme(c.positional, causal=True, **pos)
        self.dropout = nn.Dropout(c.dropout)
        block = c.block_config()
        self.encoder = Encoder(block, c.n_encoder_layers)
        self.decoder = Decoder(block, c.n_decoder_layers)
        self.lm_head = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self._init_weights()
        if c.tie_embeddings:
            self.lm_head.weight = self.tgt_embed.weight

    def _init_weights(self) -> None:
        for p in self.parameters():  # Xavier/Glorot uniform, as in the reference implementations
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        with torch.no_grad():
            for emb in (self.src_embed, self.tgt_embed):
                emb.weight[self.config.pad_id].zero_()

    def num_parameters(self) -> int:
        return count_parameters(self)

    def _embed(self, emb: TokenEmbedding, ids: Tensor, scheme: PositionScheme, pos: Tensor) -> Tensor:
        x = emb(ids)  # (B, L, D)
        absolute = scheme.absolute(pos)
        if absolute is not None:
            x = x + absolute.to(x.dtype)
        return self.dropout(x)

    def encode(self, src_ids: Tensor, src_valid: Tensor | None = None) -> Tensor:
        """src_ids (B, S) -> memory (B, S, D). ``src_valid`` (B, S) defaults to ids != pad_id."""
        src_valid = (src_ids != self.config.pad_id) if src_valid is None else src_valid
        pos = torch.arange(src_ids.shape[1], device=src_ids.device)
        x = self._embed(self.src_embed, src_ids, self.enc_pos, pos)
        mask = combine_masks(padding_mask(src_valid), query_padding_mask(src_valid))  # (B, 1, S, S)
        return self.encoder(
            x, mask=mask, bias=self.enc_pos.attn_bias(pos, pos), rope=self.enc_pos.rotary(pos)
        )  # (B, S, D)

    def decode(
        self,
        tgt_in: Tensor,
        memory: Tensor | None,
        src_valid: Tensor,
        *,
        kv_caches: list[KVCache] | None = None,
        cross_caches: list[CrossAttnCache] | None = None,
        input_pos: Tensor | None = None,
    ) -> Tensor:
        """tgt_in (B, T) -> logits (B, T, V). With caches, ``input_pos`` (T,) are absolute positions."""
        T = tgt_in.shape[1]
        if input_pos is None:
            input_pos = torch.arange(T, device=tgt_in.device)
        if kv_caches is None:
            k_pos = input_pos
            self_mask = causal_mask(T, device=tgt_in.device)  # (1, 1, T, T)
        else:
            k_pos = torch.arange(kv_caches[0].max_len, device=tgt_in.device)
            self_mask = position_causal_mask(input_pos, k_pos)  # (1, 1, T, Smax)
        x = self._embed(self.tgt_embed, tgt_in, self.dec_pos, input_pos)
        x = self.decoder(
            x, memory, kv_caches=kv_caches, cross_caches=cross_caches, input_pos=input_pos,
            self_mask=self_mask, cross_mask=padding_mask(src_valid),
            self_bias=self.dec_pos.attn_bias(input_pos, k_pos), rope=self.dec_pos.rotary(input_pos),
        )  # (B, T, D)
        return self.lm_head(x)  # (B, T, V)

    def forward(self, src_ids: Tensor, tgt_in: Tensor, src_valid: Tensor | None = None) -> Tensor:
        src_valid = (src_ids != self.config.pad_id) if src_valid is None else src_valid
        memory = self.encode(src_ids, src_valid)
        return self.decode(tgt_in, memory, src_valid)

    def new_kv_caches(
        self, batch_size: int, max_len: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> list[KVCache]:
        """One preallocated self-attention cache per decoder layer."""
        c, p = self.config, self.lm_head.weight
        return [
            KVCache(batch_size, c.n_heads, max_len, c.d_model // c.n_heads, dtype=dtype or p.dtype, device=device or p.device)
            for _ in range(c.n_decoder_layers)
        ]

    def new_cross_caches(self) -> list[CrossAttnCache]:
        return [CrossAttnCache() for _ in range(self.config.n_decoder_layers)]
