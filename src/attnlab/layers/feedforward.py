"""Position-wise feed-forward networks.

Dimension key: B batch, T length, D model width, F hidden width.

    plain:  fc2(dropout(act(fc1(x))))                     act in relu, gelu, gelu_tanh
    gated:  fc2(dropout(act(gate(x)) * fc1(x)))           swiglu (act = silu), geglu (act = gelu_tanh)
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}
GATED = {"swiglu": "silu", "geglu": "gelu_tanh", "reglu": "relu"}


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """x (B, T, D) -> (B, T, D). ``activation`` in relu, gelu, gelu_tanh, silu, swiglu, geglu, reglu."""

    def __init__(
        self, d_model: int, d_ff: int, *, activation: str = "relu", bias: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.gated = activation in GATED
        self.act = get_activation(GATED.get(activation, activation))
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.gate = nn.Linear(d_model, d_ff, bias=bias) if self.gated else None
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.gate is not None:
            h = self.act(self.gate(x)) * self.fc1(x)  # (B, T, F)
        else:
            h = self.act(self.fc1(x))  # (B, T, F)
        return self.fc2(self.dropout(h))  # (B, T, D)
