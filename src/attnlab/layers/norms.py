"""Normalization layers.

Dimension key: D model width (the normalized last dimension).

- LayerNorm (Ba et al. 2016): (x - mean) / sqrt(var + eps) * weight + bias; torch's ``nn.LayerNorm``.
- RMSNorm (Zhang & Sennrich 2019; T5's "layer norm"): x / sqrt(mean(x^2) + eps) * weight, no
  centering and no bias. The statistic is computed in float32 (or float64 for float64 inputs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        rms = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return (xf * rms).to(x.dtype) * self.weight


def make_norm(kind: str, d_model: int, *, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """``"layernorm"`` or ``"rmsnorm"``."""
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; choose 'layernorm' or 'rmsnorm'")
