"""Token embeddings.

Dimension key: B batch, T length, V vocabulary, D model width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TokenEmbedding(nn.Module):
    """ids (B, T) -> (B, T, D), optionally multiplied by sqrt(D) as in the 2017 paper (section 3.4)."""

    def __init__(self, vocab_size: int, d_model: int, *, scale: bool = False, padding_idx: int | None = None) -> None:
        super().__init__()
        self.weight_scale = math.sqrt(d_model) if scale else 1.0
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.vocab_size = vocab_size

    @property
    def weight(self) -> nn.Parameter:
        return self.embedding.weight

    def forward(self, ids: Tensor) -> Tensor:
        if ids.device.type == "cpu" and not torch.compiler.is_compiling():  # GPU: no host sync
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
                raise ValueError(
                    f"token ids must lie in [0, {self.vocab_size}); got range "
                    f"[{int(ids.min())}, {int(ids.max())}] — does the tokenizer match the model's vocab?"
                )
        x = self.embedding(ids)  # (B, T, D)
        return x * self.weight_scale if self.weight_scale != 1.0 else x
