"""The recurrent encoder: embeddings, a (bi)directional GRU/LSTM over the packed source, and the
bridge that turns its final states into the decoder's initial state.

Dimension key: B batch, S source length, E embedding width, D memory width (``d_hidden``),
L layers.

    memory  h_1 .. h_S   (B, S, D)   forward and backward annotations side by side; zeros on padding
    summary c            (B, D)      the top layer's final forward state and final backward state
    hidden  s_0          (L, B, D)   tanh(W [final states]) per layer (a pair for an LSTM)
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.classic.config import RNNSeq2SeqConfig
from attnlab.classic.rnn import (
    RNNState,
    make_rnn,
    map_state,
    merge_directions,
    select_state,
)
from attnlab.core.masks import lengths_to_valid
from attnlab.layers.embeddings import TokenEmbedding


@dataclasses.dataclass
class EncoderOutput:
    """What the decoder reads: the annotations, their validity, and the initial decoder state."""

    memory: Tensor  # (B, S, D)
    valid: Tensor  # (B, S) bool, True on real tokens
    lengths: Tensor  # (B,) long
    summary: Tensor  # (B, D)
    hidden: RNNState  # (L, B, D), or an (h, c) pair

    def select(self, index: Tensor) -> EncoderOutput:
        """Keep batch rows ``index`` (B',), in that order (expanding for beam search, reordering)."""
        return EncoderOutput(
            memory=self.memory.index_select(0, index), valid=self.valid.index_select(0, index),
            lengths=self.lengths.index_select(0, index), summary=self.summary.index_select(0, index),
            hidden=select_state(self.hidden, index),
        )


def check_source(src_ids: Tensor, src_valid: Tensor) -> Tensor:
    """Validate a right-padded source batch; return its lengths (B,)."""
    if src_ids.dim() != 2:
        raise ValueError(f"src_ids must be (B, S), got shape {tuple(src_ids.shape)}")
    if src_valid.shape != src_ids.shape or src_valid.dtype != torch.bool:
        raise ValueError(
            f"src_valid must be a bool tensor shaped like src_ids {tuple(src_ids.shape)}, "
            f"got {src_valid.dtype} {tuple(src_valid.shape)}"
        )
    lengths = src_valid.sum(dim=1)  # (B,)
    if src_ids.shape[1] == 0 or bool((lengths == 0).any()):
        raise ValueError("every source row needs at least one valid token; drop empty sentences first")
    if not torch.equal(src_valid, lengths_to_valid(lengths, src_ids.shape[1])):
        raise ValueError(
            "the RNN encoder reads right-padded batches: src_valid must be True on a prefix of each row "
            "(pad on the right, e.g. with attnlab's collate or torch.nn.utils.rnn.pad_sequence)"
        )
    return lengths


class RNNEncoder(nn.Module):
    """src_ids (B, S), src_valid (B, S) -> :class:`EncoderOutput`."""

    def __init__(self, config: RNNSeq2SeqConfig) -> None:
        super().__init__()
        c = self.config = config
        self.embed = TokenEmbedding(c.vocab_size, c.d_embed, padding_idx=c.pad_id)
        self.rnn = make_rnn(
            c.cell, c.d_embed, c.encoder_hidden, c.n_layers, bidirectional=c.bidirectional, dropout=c.dropout
        )
        self.dropout = nn.Dropout(c.dropout)
        self.bridge = nn.Linear(c.d_hidden, c.d_hidden)
        self.bridge_cell = nn.Linear(c.d_hidden, c.d_hidden) if c.cell == "lstm" else None

    def forward(self, src_ids: Tensor, src_valid: Tensor) -> EncoderOutput:
        lengths = check_source(src_ids, src_valid)
        x = self.dropout(self.embed(src_ids))  # (B, S, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src_ids.shape[1])  # (B, S, D)
        final = map_state(final, lambda t: merge_directions(t, self.config.n_layers))  # (L, B, D)
        if isinstance(final, tuple):
            assert self.bridge_cell is not None
            hidden: RNNState = (torch.tanh(self.bridge(final[0])), torch.tanh(self.bridge_cell(final[1])))
            summary = final[0][-1]  # (B, D)
        else:
            hidden, summary = torch.tanh(self.bridge(final)), final[-1]
        return EncoderOutput(
            memory=self.dropout(memory), valid=src_valid, lengths=lengths, summary=summary, hidden=hidden
        )
