"""Sinusoidal positional encoding of "Attention Is All You Need" (section 3.5).

Dimension key: T positions, D model width.

    PE(pos, 2i)   = sin(pos / 10000^(2i / D))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / D))

For any offset k, PE(pos + k) is a fixed linear map (a block rotation) of PE(pos): the property the
paper cites for why relative positions are easy to attend to.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(max_len: int, d_model: int, base: float = 10000.0) -> Tensor:
    """(max_len, d_model) float32 table; odd widths drop the last cosine column."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (T, 1)
    i2 = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),)
    angle = pos / torch.pow(torch.tensor(base, dtype=torch.float64), i2 / d_model)  # (T, D/2)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed table lookup: forward(input_pos (T,) or (B, T)) -> (T, D) or (B, T, D)."""

    table: Tensor

    def __init__(self, d_model: int, max_len: int = 4096, base: float = 10000.0) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model, base), persistent=False)

    def forward(self, input_pos: Tensor) -> Tensor:
        check_positions(input_pos, self.max_len)
        return self.table[input_pos]  # (..., T, D)


def check_positions(input_pos: Tensor, max_len: int) -> None:
    """ValueError when a position falls outside [0, max_len) (skipped under torch.compile)."""
    if torch.compiler.is_compiling() or input_pos.numel() == 0:
        return
    hi, lo = int(input_pos.max()), int(input_pos.min())
    if lo < 0 or hi >= max_len:
        raise ValueError(
            f"positions must lie in [0, {max_len}) but got range [{lo}, {hi}]; raise max_len "
            "(max_position_embeddings) in the config or shorten the input"
        )


def relative_shift_matrix(k: int, d_model: int, base: float = 10000.0) -> Tensor:
    """(D, D) matrix M_k with PE(pos + k) = PE(pos) @ M_k for every pos (even D)."""
    if d_model % 2:
        raise ValueError(f"the shift matrix needs an even d_model, got {d_model}")
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    for j in range(d_model // 2):
        w = k / base ** (2 * j / d_model)
        c, s = math.cos(w), math.sin(w)
        # [sin(a+w), cos(a+w)] = [sin a, cos a] @ [[c, -s], [s, c]]
        m[2 * j, 2 * j], m[2 * j, 2 * j + 1] = c, -s
        m[2 * j + 1, 2 * j], m[2 * j + 1, 2 * j + 1] = s, c
    return m
