"""Text generation outside the model: logits processors, greedy, sampling, beam search, streaming.

Dimension key: B batch, V vocab, N new tokens.

    from attnlab.generation import generate, GenerationConfig, TextStreamer
    out = generate(model, ids, max_new_tokens=32, num_beams=4)

See ``docs/generation.md`` for a guide.
"""

from attnlab.generation.api import GenerationOutput, GenerationSession, generate
from attnlab.generation.beam import BeamHypotheses, BeamSearch
from attnlab.generation.config import GenerationConfig
from attnlab.generation.processors import (
    LogitsProcessor,
    MinNewTokens,
    NoRepeatNGram,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    apply_processors,
    build_processors,
)
from attnlab.generation.sampling import greedy_step, make_generator, sample_step
from attnlab.generation.streaming import StreamEvent, TextStreamer

__all__ = [
    "BeamHypotheses",
    "BeamSearch",
    "GenerationConfig",
    "GenerationOutput",
    "GenerationSession",
    "LogitsProcessor",
    "MinNewTokens",
    "NoRepeatNGram",
    "RepetitionPenalty",
    "StreamEvent",
    "Temperature",
    "TextStreamer",
    "TopK",
    "TopP",
    "apply_processors",
    "build_processors",
    "generate",
    "greedy_step",
    "make_generator",
    "sample_step",
]
