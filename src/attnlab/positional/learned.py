"""Learned absolute position embeddings (BERT, GPT-2, ViT).

Dimension key: T positions, D model width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.positional.sinusoidal import check_positions


class LearnedPositionalEmbedding(nn.Module):
    """A (max_len, D) trainable table: forward(input_pos (T,) or (B, T)) -> (..., T, D)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, input_pos: Tensor) -> Tensor:
        check_positions(input_pos, self.max_len)
        return self.weight[input_pos]  # (..., T, D)
