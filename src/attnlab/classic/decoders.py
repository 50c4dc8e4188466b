"""The three recurrent decoders: context-vector baseline, Bahdanau, Luong.

Dimension key: B batch, T target length, S source length, E embedding width, D decoder and memory
width, V target vocabulary, L layers.

Every decoder is driven one token at a time by ``step(y_prev (B,), state) -> (logits (B, V),
state, alignment (B, S) | None)`` and, for teacher forcing, by ``forward(tgt_in (B, T), state) ->
(logits (B, T, V), alignments (B, T, S) | None)``. States are immutable :class:`DecoderState`
values, so beam search reorders them with ``state.select(index)``.

    none      s_t = RNN([e_{t-1}; c], s_{t-1})             logits = Readout([s_t; c; e_{t-1}])
    bahdanau  c_t = attend(s_{t-1});  s_t = RNN([e_{t-1}; c_t], s_{t-1})
                                                            logits = Readout([s_t; c_t; e_{t-1}])
    luong     h_t = RNN([e_{t-1}; h~_{t-1}], h_{t-1})  (h~ only with input feeding)
              c_t = attend(h_t);  h~_t = tanh(W_c [c_t; h_t]);  logits = W_s h~_t

Bahdanau et al. read the output from s_{t-1}; here the readout sees the updated s_t, which has
already taken in c_t and e_{t-1}. Without input feeding the Luong decoder and the baseline run the
RNN over the whole target at once during teacher forcing.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

from attnlab.classic.attention import GlobalAttention, LocalPAttention, make_score
from attnlab.classic.config import RNNSeq2SeqConfig
from attnlab.classic.encoder import EncoderOutput
from attnlab.classic.rnn import RNNState, make_rnn, select_state, top_hidden
from attnlab.layers.embeddings import TokenEmbedding


@dataclasses.dataclass(frozen=True)
class DecoderState:
    """Everything a decoding step needs; rows are batch entries (batch x beams in beam search)."""

    hidden: RNNState  # (L, B, D), or an (h, c) pair
    memory: Tensor  # (B, S, D) attention values
    keys: Tensor  # (B, S, K) scores' prepared keys (the memory itself for the baseline and dot)
    valid: Tensor  # (B, S) bool
    lengths: Tensor  # (B,) long
    feed: Tensor  # (B, D): the baseline's context c, Luong's h~_{t-1}; unused zeros for Bahdanau

    def select(self, index: Tensor) -> DecoderState:
        """Keep batch rows ``index`` (B',), in that order."""
        return DecoderState(
            hidden=select_state(self.hidden, index), memory=self.memory.index_select(0, index),
            keys=self.keys.index_select(0, index), valid=self.valid.index_select(0, index),
            lengths=self.lengths.index_select(0, index), feed=self.feed.index_select(0, index),
        )


StepOutput = tuple[Tensor, DecoderState, Tensor | None]  # (logits or features, next state, alignment)


class Readout(nn.Module):
    """x (..., F) -> (logits (..., V), hidden tanh(W x) (..., D)): a one-hidden-layer deep output."""

    def __init__(self, d_in: int, d_hidden: int, vocab_size: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(d_in, d_hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_hidden, vocab_size)

    def features(self, x: Tensor) -> Tensor:
        return torch.tanh(self.hidden(x))  # (..., D)

    def logits(self, h: Tensor) -> Tensor:
        return self.out(self.dropout(h))  # (..., V)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x)
        return self.logits(h), h


class RNNDecoder(nn.Module):
    """Shared parts: target embedding, the recurrent cell, the step loop for teacher forcing.

    A subclass defines ``advance`` (one recurrent step: features for the output layer, next state,
    alignment) and ``project`` (features -> logits); teacher forcing loops ``advance`` and projects
    all steps at once, so the vocabulary-sized matmul runs once per batch, not once per step.
    """

    has_alignment: ClassVar[bool] = True

    def __init__(self, config: RNNSeq2SeqConfig, rnn_input: int) -> None:
        super().__init__()
        c = self.config = config
        self.embed = TokenEmbedding(c.tgt_vocab_size, c.d_embed, padding_idx=c.pad_id)
        self.rnn = make_rnn(c.cell, rnn_input, c.d_hidden, c.n_layers, dropout=c.dropout)
        self.dropout = nn.Dropout(c.dropout)

    def prepare_keys(self, memory: Tensor) -> Tensor:
        return memory

    def init_feed(self, enc: EncoderOutput) -> Tensor:
        return enc.memory.new_zeros(enc.memory.shape[0], self.config.d_hidden)  # (B, D)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        return DecoderState(
            hidden=enc.hidden, memory=enc.memory, keys=self.prepare_keys(enc.memory), valid=enc.valid,
            lengths=enc.lengths, feed=self.init_feed(enc),
        )

    def advance(self, e: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor | None]:
        """e (B, E) -> (output features (B, F), next state, alignment (B, S) or None)."""
        raise NotImplementedError(f"{type(self).__name__} must implement advance")

    def project(self, features: Tensor) -> Tensor:
        """(..., F) -> logits (..., V)."""
        raise NotImplementedError(f"{type(self).__name__} must implement project")

    def step(self, y_prev: Tensor, state: DecoderState) -> StepOutput:
        """y_prev (B,) -> (logits (B, V), next state, alignment (B, S) or None)."""
        e = self.dropout(self.embed(y_prev[:, None]))[:, 0]  # (B, E)
        features, state, align = self.advance(e, state)
        return self.project(features), state, align

    def forward(self, tgt_in: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing, one step at a time: (logits (B, T, V), alignments (B, T, S) or None)."""
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        features, aligns = [], []
        for t in range(tgt_in.shape[1]):
            step_features, state, align = self.advance(emb[:, t], state)
            features.append(step_features)
            aligns.append(align)
        logits = self.project(torch.stack(features, dim=1))  # (B, T, V)
        if not self.has_alignment:
            return logits, None
        return logits, torch.stack(aligns, dim=1)  # (B, T, V), (B, T, S)


class ContextDecoder(RNNDecoder):
    """No attention: every step sees the one fixed-size context vector c (the encoder's summary)."""

    has_alignment = False

    def __init__(self, config: RNNSeq2SeqConfig) -> None:
        super().__init__(config, config.d_embed + config.d_hidden)
        c = config
        self.readout = Readout(2 * c.d_hidden + c.d_embed, c.d_hidden, c.tgt_vocab_size, c.dropout)

    def init_feed(self, enc: EncoderOutput) -> Tensor:
        return enc.summary  # (B, D)

    def advance(self, e: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, None]:
        out, hidden = self.rnn(torch.cat([e, state.feed], dim=-1)[:, None], state.hidden)  # (B, 1, D)
        features = torch.cat([out[:, 0], state.feed, e], dim=-1)  # (B, 2D + E)
        return features, dataclasses.replace(state, hidden=hidden), None

    def project(self, features: Tensor) -> Tensor:
        return self.readout(features)[0]

    def forward(self, tgt_in: Tensor, state: DecoderState) -> tuple[Tensor, None]:
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        context = state.feed[:, None].expand(-1, tgt_in.shape[1], -1)  # (B, T, D)
        out, _ = self.rnn(torch.cat([emb, context], dim=-1), state.hidden)  # (B, T, D)
        logits, _ = self.readout(torch.cat([out, context, emb], dim=-1))  # (B, T, V)
        return logits, None


class BahdanauDecoder(RNNDecoder):
    """Additive attention from the previous state s_{t-1}; the context joins the RNN input."""

    def __init__(self, config: RNNSeq2SeqConfig) -> None:
        super().__init__(config, config.d_embed + config.d_hidden)
        c = config
        assert c.d_attn is not None
        self.attention = GlobalAttention(make_score("additive", c.d_hidden, c.d_hidden, c.d_attn))
        self.readout = Readout(2 * c.d_hidden + c.d_embed, c.d_hidden, c.tgt_vocab_size, c.dropout)

    def prepare_keys(self, memory: Tensor) -> Tensor:
        return self.attention.prepare(memory)  # (B, S, A)

    def advance(self, e: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        query = top_hidden(state.hidden)[:, None]  # (B, 1, D): s_{t-1}
        context, align = self.attention(query, state.keys, state.memory, state.valid, state.lengths)
        context = context[:, 0]  # (B, D)
        out, hidden = self.rnn(torch.cat([e, context], dim=-1)[:, None], state.hidden)  # (B, 1, D)
        features = torch.cat([out[:, 0], context, e], dim=-1)  # (B, 2D + E)
        return features, dataclasses.replace(state, hidden=hidden), align[:, 0]  # align: (B, S)

    def project(self, features: Tensor) -> Tensor:
        return self.readout(features)[0]


class LuongDecoder(RNNDecoder):
    """Attention from the current state h_t, an attentional hidden layer, optional input feeding."""

    def __init__(self, config: RNNSeq2SeqConfig) -> None:
        c = config
        super().__init__(c, c.d_embed + (c.d_hidden if c.input_feeding else 0))
        assert c.d_attn is not None
        score = make_score(c.score, c.d_hidden, c.d_hidden, c.d_attn)
        if c.alignment == "local-p":
            self.attention: GlobalAttention = LocalPAttention(score, c.d_hidden, c.window)
        else:
            self.attention = GlobalAttention(score)
        self.readout = Readout(2 * c.d_hidden, c.d_hidden, c.tgt_vocab_size, c.dropout)  # W_c, then W_s

    def prepare_keys(self, memory: Tensor) -> Tensor:
        return self.attention.prepare(memory)

    def _attend(self, h: Tensor, state: DecoderState) -> tuple[Tensor, Tensor]:
        """h (B, T, D) -> attentional vectors h~ (B, T, D), alignment (B, T, S)."""
        context, align = self.attention(h, state.keys, state.memory, state.valid, state.lengths)
        return self.readout.features(torch.cat([context, h], dim=-1)), align

    def advance(self, e: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        x = torch.cat([e, state.feed], dim=-1) if self.config.input_feeding else e  # (B, E [+ D])
        out, hidden = self.rnn(x[:, None], state.hidden)  # (B, 1, D)
        attentional, align = self._attend(out, state)
        attentional = attentional[:, 0]  # (B, D)
        return attentional, dataclasses.replace(state, hidden=hidden, feed=attentional), align[:, 0]

    def project(self, features: Tensor) -> Tensor:
        return self.readout.logits(features)  # W_s h~

    def forward(self, tgt_in: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None]:
        if self.config.input_feeding:
            return super().forward(tgt_in, state)
        out, _ = self.rnn(self.dropout(self.embed(tgt_in)), state.hidden)  # (B, T, D)
        attentional, align = self._attend(out, state)
        return self.project(attentional), align  # (B, T, V), (B, T, S)


DECODERS: dict[str, type[RNNDecoder]] = {
    "none": ContextDecoder, "bahdanau": BahdanauDecoder, "luong": LuongDecoder,
}
