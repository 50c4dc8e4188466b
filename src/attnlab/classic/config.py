"""Configuration and presets of the RNN encoder-decoder family (model_type ``"rnn_seq2seq"``).

Dimension key: B batch, S source length, T target length, E embedding width, D memory and decoder
width (``d_hidden``), V vocabulary.

One dataclass covers the three decoders, chosen by ``attention``:

- ``"none"``: the context-vector baseline (Cho et al. 2014): the decoder sees only the encoder's
  final state, fed into every step.
- ``"bahdanau"``: additive attention scored from the previous decoder state, context concatenated
  into the RNN input (Bahdanau et al. 2015).
- ``"luong"``: attention from the current decoder state with a ``dot``, ``general`` or ``concat``
  score, an attentional hidden layer, optional input feeding, and ``global`` or ``local-p``
  alignment with a Gaussian window of half-width ``window`` (Luong et al. 2015).

With ``bidirectional=True`` each encoder direction is ``d_hidden // 2`` wide, so the memory and the
decoder always share the width D (which the ``dot`` score needs).
"""

from __future__ import annotations

import dataclasses

from attnlab.models.config import ModelConfig, register_config, register_preset

CELLS = ("gru", "lstm")
ATTENTIONS = ("none", "bahdanau", "luong")
SCORES = ("dot", "general", "concat")
ALIGNMENTS = ("global", "local-p")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


@register_config
@dataclasses.dataclass
class RNNSeq2SeqConfig(ModelConfig):
    model_type = "rnn_seq2seq"

    vocab_size: int = 8000
    tgt_vocab_size: int | None = None  # None: the same size as the source vocabulary
    d_embed: int = 256
    d_hidden: int = 512  # memory width and decoder width (each encoder direction gets half)
    n_layers: int = 1  # encoder and decoder depth
    cell: str = "gru"  # gru | lstm
    bidirectional: bool = True
    attention: str = "bahdanau"  # none | bahdanau | luong
    score: str = "general"  # luong only: dot | general | concat
    alignment: str = "global"  # luong only: global | local-p
    window: int = 10  # local-p half-width D: positions p_t - D .. p_t + D, Gaussian sigma D / 2
    input_feeding: bool = True  # luong only: feed the attentional vector into the next step
    d_attn: int | None = None  # hidden size of additive (bahdanau / concat) scores; None: d_hidden
    dropout: float = 0.1
    max_len: int = 256  # default cap on generated length
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self) -> None:
        if self.tgt_vocab_size is None:
            self.tgt_vocab_size = self.vocab_size
        if self.d_attn is None:
            self.d_attn = self.d_hidden
        _check_choice("cell", self.cell, CELLS)
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("score", self.score, SCORES)
        _check_choice("alignment", self.alignment, ALIGNMENTS)
        if self.alignment != "global" and self.attention != "luong":
            raise ValueError(
                f"alignment={self.alignment!r} is a Luong variant; set attention='luong' or alignment='global'"
            )
        if self.bidirectional and self.d_hidden % 2:
            raise ValueError(
                f"a bidirectional encoder splits d_hidden over two directions; d_hidden={self.d_hidden} must be even"
            )
        for name in ("vocab_size", "tgt_vocab_size", "d_embed", "d_hidden", "n_layers", "window", "d_attn"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    @property
    def decoder_start_id(self) -> int:
        return self.bos_id

    @property
    def encoder_hidden(self) -> int:
        """Width of one encoder direction."""
        return self.d_hidden // 2 if self.bidirectional else self.d_hidden


_LUONG = {"attention": "luong", "cell": "lstm", "n_layers": 2, "bidirectional": False, "input_feeding": True}
_TINY = {"vocab_size": 97, "d_embed": 16, "d_hidden": 32, "max_len": 64, "dropout": 0.0, "window": 3}

register_preset("rnn-noattn", RNNSeq2SeqConfig, attention="none")
register_preset("rnn-bahdanau", RNNSeq2SeqConfig, attention="bahdanau")
for _score in SCORES:
    register_preset(f"rnn-luong-{_score}", RNNSeq2SeqConfig, **_LUONG, score=_score)
register_preset("rnn-luong-local", RNNSeq2SeqConfig, **_LUONG, score="general", alignment="local-p")
register_preset("rnn-noattn-tiny", RNNSeq2SeqConfig, attention="none", **_TINY)
register_preset("rnn-bahdanau-tiny", RNNSeq2SeqConfig, attention="bahdanau", **_TINY)
register_preset("rnn-luong-general-tiny", RNNSeq2SeqConfig, **{**_LUONG, **_TINY}, score="general")
register_preset(
    "rnn-luong-local-tiny", RNNSeq2SeqConfig, **{**_LUONG, **_TINY}, score="general", alignment="local-p"
)
