"""Rotary position embedding (RoFormer, Su et al. 2021).

Dimension key: B batch, H heads, T positions, Dh head dim (even).

Each pair of channels (i, i + Dh/2) of q and k is rotated by angle pos * base^(-2i/Dh) ("rotate
half" layout, as GPT-NeoX and LLaMA use). Because rotations compose, q_m . k_n depends on m - n
only: the attention score sees relative offsets though the encoding is applied per position.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """forward(input_pos (T,) or (B, T)) -> (cos, sin), each (T, Dh) or (B, 1, T, Dh)."""

    inv_freq: Tensor

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
        inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("inv_freq", inv.float(), persistent=False)

    def forward(self, input_pos: Tensor) -> tuple[Tensor, Tensor]:
        angle = input_pos.float()[..., None] * self.inv_freq  # (..., T, Dh/2)
        angle = torch.cat([angle, angle], dim=-1)  # (..., T, Dh)
        cos, sin = angle.cos(), angle.sin()
        if cos.dim() == 3:  # batched positions: broadcast over heads
            cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, Dh)
        return cos, sin


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, H, T, Dh) by the angles of (cos, sin); computed in x's dtype."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)
