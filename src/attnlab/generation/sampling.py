"""Choosing the next token from processed scores.

Dimension key: B batch, V vocab.
"""

from __future__ import annotations

import torch
from torch import Tensor


def greedy_step(scores: Tensor) -> Tensor:
    """(B, V) -> (B,) the highest-scoring token (the first one on ties)."""
    return scores.argmax(dim=-1)


def sample_step(scores: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """(B, V) -> (B,) one token drawn from softmax(scores); -inf scores are never drawn.

    Uses the exponential race: argmax_v p_v / E_v with E_v ~ Exp(1) i.i.d. is distributed as p
    (the Gumbel-max trick in another form). Unlike ``torch.multinomial`` it needs no host sync and
    does not fail on NaN, so NaN logits are reported by the decode loop's own check instead.
    """
    probs = torch.softmax(scores.float(), dim=-1)  # (B, V)
    race = torch.empty_like(probs).exponential_(1.0, generator=generator).clamp_(min=1e-20)  # (B, V)
    return (probs / race).argmax(dim=-1)  # (B,)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A private generator seeded with ``seed`` (None: use torch's global RNG)."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def check_finite_logits(logits: Tensor, where: str) -> None:
    """ValueError when the model's raw logits hold NaN (the decode loop cannot recover from them)."""
    if torch.isnan(logits).any():
        raise ValueError(
            f"the model produced NaN logits {where}; check the weights (e.g. a diverged checkpoint) "
            "and the dtype (fp16 overflow: try bfloat16 or float32)"
        )
