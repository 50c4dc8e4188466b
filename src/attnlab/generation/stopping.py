"""When rows stop: eos tokens, stop strings, and the bookkeeping of finished rows.

Dimension key: B batch, L tokens in a row's history, N new tokens.

A finished row keeps receiving ``pad_id`` so the batch stays rectangular; ``lengths`` counts each
row's real new tokens, the eos (or the token completing a stop string) included. Checking whether
every row is done needs the values on the host, which on a GPU stalls the queue of launched
kernels; :class:`StopState` therefore looks only every ``sync_every`` steps (every step on CPU).
Rows that finish in between are already padded, so results do not depend on ``sync_every``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def decode_ids(tokenizer: Any, ids: Sequence[int]) -> str:
    """Text of ``ids`` with any duck-typed tokenizer offering ``decode(ids) -> str``."""
    return tokenizer.decode(list(ids))


def stop_string_hits(
    tokenizer: Any, rows: Tensor, lengths: Tensor, stop_strings: Sequence[str]
) -> Tensor:
    """(R,) bool: True where the decoded first ``lengths[r]`` tokens of ``rows`` (R, N) contain a stop string."""
    hits = [
        any(s in decode_ids(tokenizer, row[:n].tolist()) for s in stop_strings)
        for row, n in zip(rows, lengths.tolist())
    ]
    return torch.tensor(hits, dtype=torch.bool, device=rows.device)


class StopState:
    """Tracks finished rows of a greedy/sampling batch; ``new_tokens`` (B, N) holds the output."""

    def __init__(
        self,
        batch_size: int,
        max_new_tokens: int,
        *,
        eos_ids: Sequence[int],
        pad_id: int,
        device: torch.device,
        stop_strings: Sequence[str] = (),
        tokenizer: Any = None,
    ) -> None:
        if stop_strings and tokenizer is None:
            raise ValueError("stop_strings need a tokenizer (an object with decode(ids) -> str); pass tokenizer=...")
        self.pad_id, self.stop_strings, self.tokenizer = pad_id, tuple(stop_strings), tokenizer
        self.eos = torch.tensor(list(eos_ids), dtype=torch.long, device=device) if eos_ids else None
        self.finished = torch.zeros(batch_size, dtype=torch.bool, device=device)  # (B,)
        self._lengths = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
        self.new_tokens = torch.full((batch_size, max_new_tokens), pad_id, dtype=torch.long, device=device)
        self.nan_seen = torch.zeros((), dtype=torch.bool, device=device)
        self.steps = 0
        self.sync_every = 1 if device.type == "cpu" or self.stop_strings else 16

    @property
    def can_stop_early(self) -> bool:
        return self.eos is not None or bool(self.stop_strings)

    @property
    def lengths(self) -> Tensor:
        """(B,) new tokens per row, the finishing token included."""
        return self._lengths if self.can_stop_early else torch.full_like(self._lengths, self.steps)

    def watch(self, logits: Tensor) -> None:
        """Remember whether the raw logits held NaN; raised at the next sync point."""
        self.nan_seen |= torch.isnan(logits).any()

    def record(self, tokens: Tensor) -> Tensor:
        """Pad the tokens of finished rows, store them, update ``finished``; returns (B,) tokens."""
        if self.can_stop_early:
            tokens = tokens.masked_fill(self.finished, self.pad_id)  # (B,)
            self._lengths.add_(~self.finished)
        self.new_tokens[:, self.steps] = tokens
        self.steps += 1
        if self.eos is not None:
            self.finished |= torch.isin(tokens, self.eos)
        if self.stop_strings:
            self.finished |= stop_string_hits(self.tokenizer, self.new_tokens, self._lengths, self.stop_strings)
        return tokens

    def all_done(self, *, force: bool = False) -> bool:
        """True when every row finished; syncs only every ``sync_every`` steps unless ``force``."""
        if not force and self.steps % self.sync_every:
            return False
        if bool(self.nan_seen):
            raise ValueError(
                f"the model produced NaN logits (within the first {self.steps} new tokens); check the weights "
                "(e.g. a diverged checkpoint) and the dtype (fp16 overflow: try bfloat16 or float32)"
            )
        return self.can_stop_early and bool(self.finished.all())
