"""Logits processors: small callables ``(ids (B, L), scores (B, V)) -> scores (B, V)``.

Dimension key: B batch (x beams), L tokens so far, V vocab, n n-gram size.

``ids`` holds the tokens each row has seen so far (prompt then generated); ``-1`` marks a slot with
no token (left padding), which every processor ignores, so a padded row is processed exactly as it
would be alone. Processors never modify their input in place.

The order :func:`build_processors` uses is HF transformers' order: repetition penalty, no-repeat
n-gram, min new tokens, then (sampling only) temperature, top-k, top-p.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from attnlab.generation.config import GenerationConfig

LogitsProcessor = Callable[[Tensor, Tensor], Tensor]

NO_TOKEN = -1  # the id stored in history slots that hold no token (padding)


def token_set(ids: Tensor, vocab_size: int) -> Tensor:
    """(B, V) bool: True where token v occurs in row b of ``ids`` (B, L); -1 entries are ignored."""
    idx = ids.masked_fill(ids < 0, vocab_size)  # (B, L), no-token -> spare column V
    seen = torch.zeros(ids.shape[0], vocab_size + 1, dtype=torch.bool, device=ids.device)
    return seen.scatter_(1, idx, True)[:, :vocab_size]  # (B, V)


class RepetitionPenalty:
    """CTRL's penalty (Keskar et al. 2019): divide positive scores, multiply negative ones, of seen tokens."""

    def __init__(self, penalty: float) -> None:
        if penalty <= 0:
            raise ValueError(f"repetition penalty must be > 0, got {penalty}")
        self.penalty = penalty

    def __call__(self, ids: Tensor, scores: Tensor) -> Tensor:
        seen = token_set(ids, scores.shape[-1])  # (B, V)
        penalized = torch.where(scores > 0, scores / self.penalty, scores * self.penalty)
        return torch.where(seen, penalized, scores)


class NoRepeatNGram:
    """Ban every token that would complete an n-gram already present in the row."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"no_repeat_ngram_size must be >= 1, got {n}")
        self.n = n

    def __call__(self, ids: Tensor, scores: Tensor) -> Tensor:
        B, L = ids.shape
        n, V = self.n, scores.shape[-1]
        if L < n:  # no complete n-gram yet
            return scores
        if n == 1:
            return scores.masked_fill(token_set(ids, V), float("-inf"))
        windows = ids.unfold(1, n, 1)  # (B, L - n + 1, n)
        suffix = ids[:, L - n + 1 :]  # (B, n - 1): the n-gram prefix the next token would complete
        match = (windows[:, :, :-1] == suffix[:, None, :]).all(-1)  # (B, L - n + 1)
        last = windows[:, :, -1]  # (B, L - n + 1)
        banned_idx = torch.where(match & (last >= 0), last, torch.full_like(last, V))
        banned = torch.zeros(B, V + 1, dtype=torch.bool, device=ids.device).scatter_(1, banned_idx, True)
        return scores.masked_fill(banned[:, :V], float("-inf"))


class MinNewTokens:
    """Forbid the eos tokens until ``min_new`` tokens have been generated after ``prompt_len``."""

    def __init__(self, prompt_len: int, min_new: int, eos_ids: Sequence[int]) -> None:
        self.prompt_len, self.min_new, self.eos_ids = prompt_len, min_new, list(eos_ids)

    def __call__(self, ids: Tensor, scores: Tensor) -> Tensor:
        if ids.shape[1] - self.prompt_len >= self.min_new or not self.eos_ids:
            return scores
        scores = scores.clone()
        scores[:, self.eos_ids] = float("-inf")
        return scores


class Temperature:
    """scores / t: t < 1 sharpens the distribution, t > 1 flattens it."""

    def __init__(self, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def __call__(self, ids: Tensor, scores: Tensor) -> Tensor:
        return scores / self.temperature


class TopK:
    """Keep the k highest scores (at least ``min_keep``); the rest become -inf."""

    def __init__(self, k: int, min_keep: int = 1) -> None:
        if k < 1:
            raise ValueError(f"top_k must be >= 1 for the filter, got {k}")
        self.k, self.min_keep = k, min_keep

    def __call__(self, ids: Tensor, scores: Tensor) -> Tensor:
        k = min(max(self.k, self.min_keep), scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[:, -1:]  # (B, 1)
        return scores.masked_fill(scores < kth, float("-inf"))


class TopP:
    """Nucleus filter (Holtzman et al. 2020): keep the smallest top set whose probability reaches p.

    Scanning tokens from least to most likely, a token is dropped while the cumulative probability
    up to and including it is <= 1 - p; the ``min_keep`` most likely tokens always stay.
    """

    def __init__(self, p: float, min_keep: int = 1) -> None:
        if not 0.0 < p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1], got {p}")
        self.p, self.min_keep = p, min_keep

    def __call__(self, ids: Tensor, scores: Tensor) -> Tensor:
        sorted_scores, order = torch.sort(scores, dim=-1)  # ascending (B, V)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)  # (B, V)
        drop_sorted = cum <= 1.0 - self.p
        drop_sorted[:, -self.min_keep :] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocab order
        return scores.masked_fill(drop, float("-inf"))


def apply_processors(processors: Sequence[LogitsProcessor], ids: Tensor, scores: Tensor) -> Tensor:
    for proc in processors:
        scores = proc(ids, scores)
    return scores


def build_processors(
    config: GenerationConfig, *, prompt_len: int, eos_ids: Sequence[int], beams: bool = False
) -> list[LogitsProcessor]:
    """The processors ``config`` asks for, in HF transformers' order.

    ``prompt_len`` counts the history columns that precede the first generated token (the padded
    prompt for decoder-only models, the start token for encoder-decoder ones).
    """
    procs: list[LogitsProcessor] = []
    if config.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(config.repetition_penalty))
    if config.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGram(config.no_repeat_ngram_size))
    if config.min_new_tokens > 0 and eos_ids:
        procs.append(MinNewTokens(prompt_len, config.min_new_tokens, eos_ids))
    if config.do_sample:
        # beam sampling keeps one more token than there are eos ids so some beam can continue
        min_keep = max(len(eos_ids), 1) + 1 if beams else 1
        if config.temperature != 1.0:
            procs.append(Temperature(config.temperature))
        if config.top_k > 0:
            procs.append(TopK(config.top_k, min_keep))
        if config.top_p < 1.0:
            procs.append(TopP(config.top_p, min_keep))
    return procs
