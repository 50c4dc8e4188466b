"""Recurrent-cell helpers shared by the encoder and the decoders.

Dimension key: L layers, B batch, H hidden width of one cell.

An RNN state is a ``(L, B, H)`` tensor for a GRU and an ``(h, c)`` pair of them for an LSTM, as
``torch.nn.GRU`` / ``torch.nn.LSTM`` use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

RNNState = Tensor | tuple[Tensor, Tensor]


def make_rnn(
    cell: str, input_size: int, hidden_size: int, n_layers: int, *, bidirectional: bool = False, dropout: float = 0.0
) -> nn.GRU | nn.LSTM:
    """A batch-first ``nn.GRU`` or ``nn.LSTM``; ``dropout`` applies between stacked layers."""
    kinds: dict[str, type[nn.GRU | nn.LSTM]] = {"gru": nn.GRU, "lstm": nn.LSTM}
    if cell not in kinds:
        raise ValueError(f"cell must be one of {sorted(kinds)}, got {cell!r}")
    return kinds[cell](
        input_size, hidden_size, n_layers, batch_first=True, bidirectional=bidirectional,
        dropout=dropout if n_layers > 1 else 0.0,
    )


def map_state(state: RNNState, fn: Callable[[Tensor], Tensor]) -> RNNState:
    """Apply ``fn`` to the state tensor (GRU) or to both of ``(h, c)`` (LSTM)."""
    if isinstance(state, tuple):
        return fn(state[0]), fn(state[1])
    return fn(state)


def select_state(state: RNNState, index: Tensor) -> RNNState:
    """Keep batch rows ``index`` (B',) of a state, in that order (beam search)."""
    return map_state(state, lambda t: t.index_select(1, index))  # (L, B', H)


def top_hidden(state: RNNState) -> Tensor:
    """(B, H): the top layer's hidden vector (``h`` for an LSTM)."""
    h = state[0] if isinstance(state, tuple) else state
    return h[-1]


def merge_directions(final: Tensor, n_layers: int) -> Tensor:
    """``torch.nn`` final states (L * dirs, B, H) -> (L, B, dirs * H), directions side by side."""
    dirs = final.shape[0] // n_layers
    final = final.view(n_layers, dirs, final.shape[1], final.shape[2])  # (L, dirs, B, H)
    return torch.cat(final.unbind(1), dim=-1)  # (L, B, dirs * H)
