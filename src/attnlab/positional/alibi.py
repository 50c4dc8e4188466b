"""ALiBi: attention with linear biases (Press et al. 2022).

Dimension key: H heads, T query positions, S key positions.

bias[h, i, j] = -m_h * (q_pos_i - k_pos_j) for causal attention (keys at or before the query), and
-m_h * |q_pos_i - k_pos_j| for bidirectional attention. The slopes m_h form the geometric sequence
2^(-8/n), 2^(-16/n), ... for n heads a power of two; otherwise the paper's interleaving rule.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def alibi_slopes(n_heads: int) -> Tensor:
    """(H,) slopes from the paper (and its reference code for non-powers of two)."""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        closest = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


class ALiBi(nn.Module):
    """forward(q_pos (T,), k_pos (S,)) -> bias (1, H, T, S)."""

    slopes: Tensor

    def __init__(self, n_heads: int, *, causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        dist = (q_pos[:, None] - k_pos[None, :]).float()  # (T, S)
        if not self.causal:
            dist = dist.abs()
        return (-self.slopes[:, None, None] * dist)[None]  # (1, H, T, S)
