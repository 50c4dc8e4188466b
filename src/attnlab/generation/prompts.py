"""Turning what the user passes into a padded (B, P) batch, and resolving special token ids.

Dimension key: B batch, P padded prompt length.

Prompts may be a string or list of strings (encoded with the tokenizer), a list of ids or a list
of id lists (ragged is fine), or a (P,) / (B, P) tensor with an optional validity mask. Masked
positions are dropped and every row re-padded: on the left for decoder-only models (new tokens
follow the last real one), on the right for encoders. A row with no tokens gets the BOS token;
without one it is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.generation.config import GenerationConfig

Prompt = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]] | Tensor


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """ids of ``text`` with a duck-typed tokenizer: encode(text) -> list[int] or an object with .ids."""
    if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
        raise ValueError("text prompts need a tokenizer with encode(text); pass tokenizer=... or token ids")
    out = tokenizer.encode(text)
    return list(getattr(out, "ids", out))


def prompt_rows(prompt: Prompt, attention_mask: Tensor | None, tokenizer: Any) -> list[list[int]]:
    """The real (unpadded) token ids of every prompt row."""
    if isinstance(prompt, Tensor):
        ids = prompt[None] if prompt.dim() == 1 else prompt
        if ids.dim() != 2:
            raise ValueError(f"prompt ids must be (P,) or (B, P), got shape {tuple(prompt.shape)}")
        if attention_mask is None:
            return ids.tolist()
        mask = attention_mask[None] if attention_mask.dim() == 1 else attention_mask
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask {tuple(mask.shape)} must match the prompt ids {tuple(ids.shape)}")
        return [row[m].tolist() for row, m in zip(ids, mask.bool())]
    if attention_mask is not None:
        raise ValueError("attention_mask goes with tensor prompts; lists and strings are padded here")
    if isinstance(prompt, str):
        return [encode_text(tokenizer, prompt)]
    items = list(prompt)
    if items and all(isinstance(x, str) for x in items):
        return [encode_text(tokenizer, s) for s in items]
    if all(isinstance(x, int) for x in items):
        return [list(items)]
    return [list(map(int, row)) for row in items]


def pad_rows(rows: list[list[int]], pad_id: int, *, left: bool, device: torch.device) -> tuple[Tensor, Tensor]:
    """(ids (B, P), valid (B, P) bool) with rows padded on the left or the right."""
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), pad_id, dtype=torch.long)
    valid = torch.zeros(len(rows), P, dtype=torch.bool)
    for b, row in enumerate(rows):
        if not row:
            continue
        cols = slice(P - len(row), P) if left else slice(0, len(row))
        ids[b, cols] = torch.tensor(row, dtype=torch.long)
        valid[b, cols] = True
    return ids.to(device), valid.to(device)


def fill_empty_rows(rows: list[list[int]], bos_id: int | None) -> list[list[int]]:
    if not rows:
        raise ValueError("got an empty batch of prompts")
    empty = [b for b, r in enumerate(rows) if not r]
    if empty and bos_id is None:
        raise ValueError(
            f"prompt row(s) {empty} are empty and the model has no BOS token to start from; "
            "give at least one token or set GenerationConfig(bos_id=...)"
        )
    return [r if r else [bos_id] for r in rows]


def check_vocab(rows: list[list[int]], vocab_size: int | None) -> None:
    if vocab_size is None:
        return
    bad = [t for r in rows for t in r if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"prompt token ids {sorted(set(bad))[:5]} lie outside the vocabulary [0, {vocab_size})")


def eos_list(config: GenerationConfig, model: nn.Module) -> list[int]:
    if config.ignore_eos:
        return []
    eos = config.eos_id if config.eos_id is not None else getattr(model.config, "eos_id", None)
    if eos is None:
        return []
    return [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]


def resolve_pad(config: GenerationConfig, model: nn.Module, eos_ids: Sequence[int]) -> int:
    for candidate in (config.pad_id, getattr(model.config, "pad_id", None)):
        if candidate is not None:
            return int(candidate)
    model_eos = getattr(model.config, "eos_id", None)
    return int(eos_ids[0]) if eos_ids else (int(model_eos) if model_eos is not None else 0)


def resolve_start(config: GenerationConfig, model: nn.Module) -> int:
    """The first decoder token of an encoder-decoder model."""
    for candidate in (
        config.decoder_start_id,
        getattr(model.config, "decoder_start_id", None),
        getattr(model.config, "bos_id", None),
    ):
        if candidate is not None:
            return int(candidate)
    raise ValueError("the model has no decoder start token; set GenerationConfig(decoder_start_id=...)")
