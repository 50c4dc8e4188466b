"""Attention before the Transformer: RNN encoder-decoders without attention, with Bahdanau's
additive attention, and with Luong's global / local-p attention (dot, general, concat scores).

Dimension key: B batch, S source length, T target length, D memory width, V target vocabulary.

    from attnlab.classic import RNNSeq2Seq, greedy_decode
    from attnlab.models import from_name
    model = RNNSeq2Seq(from_name("rnn-bahdanau-tiny"))
    logits, alignments = model.forward_with_alignments(src_ids, tgt_in)   # (B, T, V), (B, T, S)
    out = greedy_decode(model, src_ids)                                   # out.tokens, out.alignments
"""

from attnlab.classic.attention import (
    AdditiveScore,
    DotScore,
    GeneralScore,
    GlobalAttention,
    LocalPAttention,
    make_score,
    masked_softmax,
)
from attnlab.classic.config import RNNSeq2SeqConfig
from attnlab.classic.decoders import (
    BahdanauDecoder,
    ContextDecoder,
    DecoderState,
    LuongDecoder,
)
from attnlab.classic.encoder import EncoderOutput, RNNEncoder
from attnlab.classic.generate import RNNRunner, Translation, beam_search, greedy_decode
from attnlab.classic.model import RNNSeq2Seq

__all__ = [
    "AdditiveScore",
    "BahdanauDecoder",
    "ContextDecoder",
    "DecoderState",
    "DotScore",
    "EncoderOutput",
    "GeneralScore",
    "GlobalAttention",
    "LocalPAttention",
    "LuongDecoder",
    "RNNEncoder",
    "RNNRunner",
    "RNNSeq2Seq",
    "RNNSeq2SeqConfig",
    "Translation",
    "beam_search",
    "greedy_decode",
    "make_score",
    "masked_softmax",
]
