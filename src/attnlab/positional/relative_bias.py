"""T5 relative position bias (Raffel et al. 2020).

Dimension key: H heads, T query positions, S key positions, NB number of buckets.

The offset key - query is mapped to one of NB buckets: half of them for each direction when
bidirectional; within a direction, the first half of the buckets hold exact small offsets and the
rest cover offsets up to ``max_distance`` on a log scale. Each bucket has a learned scalar per head.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def relative_position_bucket(
    relative_position: Tensor, *, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128
) -> Tensor:
    """Bucket index (same shape, long) for each ``key_pos - query_pos``."""
    buckets = torch.zeros_like(relative_position, dtype=torch.long)
    n = num_buckets
    if bidirectional:
        n //= 2
        buckets = buckets + (relative_position > 0).long() * n
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = n // 2
    is_small = distance < max_exact
    # log-spaced buckets for larger distances; clamp the argument so log never sees 0
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (n - max_exact)).long()
    large = large.clamp(max=n - 1)
    return buckets + torch.where(is_small, distance, large)


class T5RelativeBias(nn.Module):
    """forward(q_pos (T,), k_pos (S,)) -> bias (1, H, T, S)."""

    def __init__(
        self, n_heads: int, *, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128
    ) -> None:
        super().__init__()
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, n_heads)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        rel = k_pos[None, :] - q_pos[:, None]  # (T, S)
        bucket = relative_position_bucket(
            rel, bidirectional=self.bidirectional, num_buckets=self.num_buckets, max_distance=self.max_distance
        )
        return self.embedding(bucket).permute(2, 0, 1)[None]  # (1, H, T, S)
