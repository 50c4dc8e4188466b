"""Position information: absolute tables added to embeddings, or rotations/biases inside attention."""

from attnlab.positional.alibi import ALiBi, alibi_slopes
from attnlab.positional.learned import LearnedPositionalEmbedding
from attnlab.positional.relative_bias import T5RelativeBias, relative_position_bucket
from attnlab.positional.rope import RotaryEmbedding, apply_rope
from attnlab.positional.sinusoidal import SinusoidalPositionalEncoding, sinusoidal_table

__all__ = [
    "ALiBi",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "T5RelativeBias",
    "alibi_slopes",
    "apply_rope",
    "relative_position_bucket",
    "sinusoidal_table",
]
