"""Mask factories. One convention everywhere: bool, True = may attend, broadcastable to (B, H, T, S).

Dimension key: B batch, H heads, T query length, S key length.

Masks are built once per forward by the model and passed down to every layer; layers never build
masks of their own.
"""

from __future__ import annotations

import torch
from torch import Tensor


def causal_mask(
    T: int, S: int | None = None, *, offset: int | None = None, device: torch.device | str | None = None
) -> Tensor:
    """(1, 1, T, S): query i (at absolute position offset + i) may see keys 0 .. offset + i.

    ``offset`` defaults to ``S - T``: the last query is aligned with the last key, which is what a
    KV cache holding S keys with T new queries needs.
    """
    S = T if S is None else S
    if offset is None:
        offset = S - T
    q_pos = torch.arange(T, device=device) + offset
    return position_causal_mask(q_pos, torch.arange(S, device=device))


def position_causal_mask(q_pos: Tensor, k_pos: Tensor) -> Tensor:
    """(1, 1, T, S) from explicit positions: key j is visible to query i when k_pos[j] <= q_pos[i].

    q_pos: (T,) or (B, T); k_pos: (S,) or (B, S). Batched positions give a (B, 1, T, S) mask.
    """
    mask = k_pos.unsqueeze(-2) <= q_pos.unsqueeze(-1)  # (..., T, S)
    return mask.unsqueeze(-3) if mask.dim() == 3 else mask[None, None]


def padding_mask(valid: Tensor) -> Tensor:
    """(B, 1, 1, S) from a (B, S) tensor that is True (or 1) on real tokens and False on padding."""
    if valid.dim() != 2:
        raise ValueError(f"padding_mask expects (B, S), got shape {tuple(valid.shape)}")
    return valid.bool()[:, None, None, :]


def padding_mask_from_ids(ids: Tensor, pad_id: int) -> Tensor:
    """(B, 1, 1, S): True where ``ids != pad_id``."""
    return padding_mask(ids != pad_id)


def lengths_to_valid(lengths: Tensor, S: int) -> Tensor:
    """(B, S) bool: True for the first lengths[b] positions of row b."""
    return torch.arange(S, device=lengths.device)[None, :] < lengths[:, None]


def query_padding_mask(valid: Tensor) -> Tensor:
    """(B, 1, T, 1): rows of padded queries, for combining into a full (B, 1, T, S) mask."""
    return valid.bool()[:, None, :, None]


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the given masks (``None`` entries are skipped); ``None`` if all are ``None``."""
    out: Tensor | None = None
    for m in masks:
        if m is None:
            continue
        if m.dtype != torch.bool:
            raise ValueError(f"masks must be bool (True = may attend), got {m.dtype}")
        out = m if out is None else out & m
    return out


def sliding_window_mask(
    T: int,
    S: int | None = None,
    *,
    window: int,
    causal: bool = True,
    offset: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """(1, 1, T, S) local attention band.

    causal: query at position p sees keys p - window + 1 .. p (``window`` keys, itself included).
    bidirectional: query at p sees keys with |p - key| <= window // 2.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    S = T if S is None else S
    if offset is None:
        offset = S - T
    q_pos = (torch.arange(T, device=device) + offset)[:, None]  # (T, 1)
    k_pos = torch.arange(S, device=device)[None, :]  # (1, S)
    delta = q_pos - k_pos
    if causal:
        band = (delta >= 0) & (delta < window)
    else:
        band = delta.abs() <= window // 2
    return band[None, None]
