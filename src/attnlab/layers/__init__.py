"""Building blocks: attention module, feed-forward, norms, residual blocks, embeddings."""

from attnlab.layers.attention import MultiHeadAttention
from attnlab.layers.blocks import BlockConfig, Decoder, DecoderLayer, Encoder, EncoderLayer, SelfAttentionBlock
from attnlab.layers.embeddings import TokenEmbedding
from attnlab.layers.feedforward import FeedForward
from attnlab.layers.norms import RMSNorm, make_norm

__all__ = [
    "BlockConfig",
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "MultiHeadAttention",
    "RMSNorm",
    "SelfAttentionBlock",
    "TokenEmbedding",
    "make_norm",
]
