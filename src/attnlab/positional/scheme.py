"""One switch for where position information enters a model.

Dimension key: T query length, S key length, D model width, H heads, Dh head dim.

    kind          enters as                              module
    "sinusoidal"  (T, D) added to the token embeddings   SinusoidalPositionalEncoding
    "learned"     (T, D) added to the token embeddings   LearnedPositionalEmbedding
    "rope"        rotation of q and k in every layer     RotaryEmbedding
    "alibi"       (1, H, T, S) score bias                ALiBi
    "t5"          (1, H, T, S) learned bucketed bias     T5RelativeBias
    "none"        nowhere (the model is permutation-equivariant without a causal mask)
"""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.positional.alibi import ALiBi
from attnlab.positional.learned import LearnedPositionalEmbedding
from attnlab.positional.relative_bias import T5RelativeBias
from attnlab.positional.rope import RotaryEmbedding
from attnlab.positional.sinusoidal import SinusoidalPositionalEncoding

POSITION_KINDS = ("sinusoidal", "learned", "rope", "alibi", "t5", "none")


class PositionScheme(nn.Module):
    """Holds the one position module a model uses and answers the three questions layers ask."""

    def __init__(
        self,
        kind: str,
        *,
        d_model: int,
        n_heads: int,
        head_dim: int,
        max_len: int,
        causal: bool,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        if kind not in POSITION_KINDS:
            raise ValueError(f"unknown positional encoding {kind!r}; choose one of {POSITION_KINDS}")
        self.kind = kind
        self.module: nn.Module | None = {
            "sinusoidal": lambda: SinusoidalPositionalEncoding(d_model, max_len),
            "learned": lambda: LearnedPositionalEmbedding(max_len, d_model),
            "rope": lambda: RotaryEmbedding(head_dim, rope_base),
            "alibi": lambda: ALiBi(n_heads, causal=causal),
            "t5": lambda: T5RelativeBias(n_heads, bidirectional=not causal),
            "none": lambda: None,
        }[kind]()

    def absolute(self, input_pos: Tensor) -> Tensor | None:
        """(T, D) or (B, T, D) to add to the embeddings, or None."""
        return self.module(input_pos) if self.kind in ("sinusoidal", "learned") else None

    def rotary(self, input_pos: Tensor) -> tuple[Tensor, Tensor] | None:
        return self.module(input_pos) if self.kind == "rope" else None

    def attn_bias(self, q_pos: Tensor, k_pos: Tensor) -> Tensor | None:
        """(1, H, T, S) score bias, or None."""
        return self.module(q_pos, k_pos) if self.kind in ("alibi", "t5") else None
