"""Mask and head helpers shared by the efficient variants.

Dimension key: B batch, H query heads, Hkv key/value heads, T query length, S key length, Dh head dim.
Masks follow the core convention: bool, True = may attend, broadcastable to (B, H, T, S).

The efficient variants never build a (T, S) mask themselves. A caller's dense mask is read either
by gathering only the (query, key) pairs a variant visits (sliding window), or by splitting it into
its key-padding, query-padding and causal parts (Linformer, Performer), which is exact only for
masks of that form and is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.efficient.variant import UnsupportedAttentionError


def as_4d(x: Tensor) -> Tensor:
    """View a mask or bias broadcastable to (B, H, T, S) with exactly four dims."""
    if x.dim() > 4:
        raise ValueError(f"masks and biases have at most 4 dims (B, H, T, S), got shape {tuple(x.shape)}")
    return x.reshape((1,) * (4 - x.dim()) + tuple(x.shape))


def repeat_kv(x: Tensor, n_heads: int) -> Tensor:
    """(B, Hkv, S, Dh) -> (B, H, S, Dh), repeating each key/value head for its query-head group."""
    rep = n_heads // x.shape[1]
    return x if rep == 1 else x.repeat_interleave(rep, dim=1)  # (B, H, S, Dh)


def gather_pairs(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Entries of a (B, H, T, S)-broadcastable ``x`` at query indices ``rows`` and key indices ``cols``.

    ``rows`` and ``cols`` broadcast against each other to some shape P (e.g. (nb, c, 1) and
    (nb, 1, W)); the result is (Bx, Hx, *P), keeping x's batch and head sizes (1 where x broadcasts).
    Dims where x broadcasts (size 1) are read at index 0.
    """
    x = as_4d(x)
    r = rows if x.shape[2] > 1 else torch.zeros_like(rows)
    c = cols if x.shape[3] > 1 else torch.zeros_like(cols)
    return x[:, :, r, c]  # (Bx, Hx, *P)


def mask_hides_future(mask: Tensor | None, T: int, S: int) -> bool:
    """True when a self-attention mask hides every key after its query (a causal mask, maybe padded)."""
    if mask is None or T != S or T < 2:
        return False
    mask = as_4d(mask)
    if mask.shape[2] == 1 or mask.shape[3] == 1:
        return False  # key padding or query padding only: no ordering
    return not bool(mask.triu(1).any())


@dataclass
class SplitMask:
    """A mask written as key_valid & query_alive (& causal); None parts are all True."""

    key_valid: Tensor | None  # (B|1, H|1, 1, S)
    query_alive: Tensor | None  # (B|1, H|1, T, 1)
    causal: bool


def split_mask(mask: Tensor | None, T: int, S: int, *, method: str, allow_causal: bool) -> SplitMask:
    """Split ``mask`` into key padding, query padding and (if allowed) a causal part, exactly.

    Raises UnsupportedAttentionError when the mask has another pattern (e.g. a band, or a causal mask
    where ``allow_causal`` is False). Dense masks cost one O(T·S) comparison.
    """
    if mask is None:
        return SplitMask(None, None, False)
    mask = as_4d(mask)
    if mask.shape[2] == 1:
        return SplitMask(mask, None, False)  # key padding only
    keys = mask.any(dim=-2, keepdim=True)  # (B|1, H|1, 1, S|1)
    rows = mask.any(dim=-1, keepdim=True)  # (B|1, H|1, T, 1)
    separable = keys & rows  # (B|1, H|1, T, S|1)
    if bool((separable == mask).all()):
        return SplitMask(keys, rows, False)
    if allow_causal and T == S and mask.shape[3] == S:
        tril = torch.ones(T, S, dtype=torch.bool, device=mask.device).tril()  # (T, S)
        if bool(((separable & tril) == mask).all()):
            return SplitMask(keys, rows, True)
    allowed = "padding masks and causal masks" if allow_causal else "padding masks (it is non-causal)"
    raise UnsupportedAttentionError(
        f"{method} attention supports only {allowed}; the mask of shape {tuple(mask.shape)} hides keys "
        "per query in another pattern. Use an exact backend ('sdpa') for this mask"
    )
