"""Sliding-window attention with global tokens (Longformer, Beltagy et al. 2020), computed blockwise.

Dimension key: B batch, H query heads, Hkv key/value heads, T sequence length (self-attention: S = T),
Dh head dim, w window, c query block, nb = ceil(T / c) blocks, W = c + w keys per block, G global tokens.

Pattern (the same as :func:`attnlab.core.masks.sliding_window_mask`):

- causal: the query at position p sees keys p - w + 1 .. p (``w`` keys, itself included);
- bidirectional: it sees keys with |p - key| <= w // 2;
- global tokens (fixed positions) attend to every key and every query attends to them (under a
  causal pattern: every earlier key, every later query).

Computation. Queries are cut into blocks of c; block b gathers the keys its queries can reach,
positions b·c - left .. b·c + c - 1 + right, into a (W, Dh) window, so the scores are (nb, c, W):
O(T·(c + w)) time and memory instead of O(T²). Every query also scores the G global keys; the
window and global scores share one softmax (a global key already inside the window is counted
once). The G global queries are recomputed as exact attention over all keys (O(G·T)) and written
over their rows. A caller's dense mask or bias is read only at the visited pairs.

Causality comes from ``is_causal`` or from a mask that hides every later key (checked, one O(T²)
pass over a mask the caller has already built). Limits: self-attention only (T == S); with a KV
cache, :class:`MultiHeadAttention` decodes through :meth:`SlidingWindowAttention.decode_mask` and an
exact kernel (each new query then costs O(S), as in any cached decoding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.core.attention import attention, get_backend, register_backend
from attnlab.core.masks import combine_masks, position_causal_mask
from attnlab.efficient.masking import as_4d, gather_pairs, mask_hides_future, repeat_kv
from attnlab.efficient.variant import AttentionVariant, BackendEntry, register_variant

DEFAULT_WINDOW = 256


def _reach(window: int, causal: bool) -> tuple[int, int]:
    """(left, right): how many keys before and after its own position a query sees."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return (window - 1, 0) if causal else (window // 2, window // 2)


def global_index(global_tokens: Sequence[int] | Tensor | None, T: int, device: torch.device) -> Tensor | None:
    """(G,) sorted unique global positions below T (positions >= T are ignored), or None."""
    if global_tokens is None:
        return None
    idx = torch.as_tensor(global_tokens, dtype=torch.long, device=device).flatten()
    if idx.numel() and int(idx.min()) < 0:
        raise ValueError(f"global token positions must be >= 0, got {idx.tolist()}")
    idx = torch.unique(idx[idx < T])  # (G,)
    return idx if idx.numel() else None


def window_pattern(
    q_pos: Tensor, k_pos: Tensor, *, window: int, causal: bool, global_idx: Tensor | None = None
) -> Tensor:
    """(1, 1, T, S) bool: the keys at ``k_pos`` (S,) each query at ``q_pos`` (T,) may attend to."""
    left, right = _reach(window, causal)
    delta = q_pos[:, None] - k_pos[None, :]  # (T, S)
    allowed = (delta >= -right) & (delta <= left)
    if global_idx is not None:
        allowed = allowed | torch.isin(k_pos, global_idx)[None, :] | torch.isin(q_pos, global_idx)[:, None]
    if causal:
        allowed = allowed & (delta >= 0)
    return allowed[None, None]  # (1, 1, T, S)


def _masked_attend(scores: Tensor, allowed: Tensor, values: Tensor, dropout: float) -> Tensor:
    """softmax(scores restricted to ``allowed``) @ values; rows with nothing allowed become zeros.

    ``scores`` is a fresh tensor and is masked in place: the (.., c, W) buffers are the peak memory.
    """
    scores.masked_fill_(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    if dropout > 0.0:
        probs = F.dropout(probs, p=dropout, training=True)
    return (probs @ values) * allowed.any(dim=-1, keepdim=True)  # dead rows (uniform probs) -> zeros


def _banded(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    window: int, causal: bool, gidx: Tensor | None, block: int,
) -> Tensor:
    """Window (+ global keys) attention for every query, blockwise; q, k, v (B, H, T, Dh) -> (B, H, T, Dh)."""
    B, H, T, Dh = q.shape
    (left, right), dev = _reach(window, causal), q.device
    nb = math.ceil(T / block)
    q_pos = torch.arange(nb * block, device=dev).view(nb, block)  # (nb, c)
    k_idx = q_pos[:, :1] - left + torch.arange(block + left + right, device=dev)  # (nb, W)
    delta = q_pos[:, :, None] - k_idx[:, None, :]  # (nb, c, W)
    allowed = (delta >= -right) & (delta <= left) & (k_idx >= 0)[:, None, :] & (k_idx < T)[:, None, :]
    k_at, q_at = k_idx.clamp(0, T - 1), q_pos.clamp(max=T - 1)
    q_blk = F.pad(q * scale, (0, 0, 0, nb * block - T)).view(B, H, nb, block, Dh)  # (B, H, nb, c, Dh)
    scores = q_blk @ k[:, :, k_at].transpose(-1, -2)  # (B, H, nb, c, W)
    values = v[:, :, k_at]  # (B, H, nb, W, Dh)
    if mask is not None:
        allowed = allowed & gather_pairs(mask, q_at[:, :, None], k_at[:, None, :])  # (B|1, H|1, nb, c, W)
    if bias is not None:
        scores = scores + gather_pairs(bias, q_at[:, :, None], k_at[:, None, :])
    if gidx is not None:  # every query also sees the global keys not already in its window
        g_delta = q_pos[:, :, None] - gidx  # (nb, c, G)
        g_allowed = (g_delta < -right) | (g_delta > left)
        if causal:  # only earlier global keys
            g_allowed = g_allowed & (g_delta >= 0)
        if mask is not None:
            g_allowed = g_allowed & gather_pairs(mask, q_at[:, :, None], gidx)  # (B|1, H|1, nb, c, G)
        g_scores = q_blk @ k[:, :, gidx].transpose(-1, -2)[:, :, None]  # (B, H, nb, c, G)
        if bias is not None:
            g_scores = g_scores + gather_pairs(bias, q_at[:, :, None], gidx)
        scores = torch.cat([scores, g_scores], dim=-1)  # (B, H, nb, c, W + G)
        lead = torch.broadcast_shapes(allowed.shape[:-1], g_allowed.shape[:-1])
        allowed = torch.cat([allowed.expand(*lead, -1), g_allowed.expand(*lead, -1)], dim=-1)
        g_values = v[:, :, gidx][:, :, None].expand(B, H, nb, -1, Dh)  # (B, H, nb, G, Dh)
        values = torch.cat([values, g_values], dim=-2)  # (B, H, nb, W + G, Dh)
    out = _masked_attend(scores, allowed, values, dropout)  # (B, H, nb, c, Dh)
    return out.reshape(B, H, nb * block, Dh)[:, :, :T]  # (B, H, T, Dh)


def _global_rows(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    causal: bool, gidx: Tensor,
) -> Tensor:
    """Exact attention of the global queries over all keys: (B, H, G, Dh)."""
    T = k.shape[2]
    rows_mask = None if mask is None else gather_pairs(mask, gidx[:, None], torch.arange(T, device=q.device))
    if causal:
        rows_mask = combine_masks(rows_mask, position_causal_mask(gidx, torch.arange(T, device=q.device)))
    rows_bias = None if bias is None else gather_pairs(bias, gidx[:, None], torch.arange(T, device=q.device))
    out, _ = attention(
        q[:, :, gidx], k, v, rows_mask, rows_bias, scale, dropout, backend="sdpa", validate=False
    )  # (B, H, G, Dh)
    return out


def _check_self_attention(q: Tensor, k: Tensor) -> None:
    if q.shape[2] != k.shape[2]:
        raise ValueError(
            f"sliding-window attention is self-attention (T == S), got T={q.shape[2]}, S={k.shape[2]}; "
            "for cached decoding use it through MultiHeadAttention, which decodes via decode_mask"
        )


def sliding_window_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    is_causal: bool, *, window: int = DEFAULT_WINDOW, global_tokens: Sequence[int] | Tensor | None = None,
    block_size: int | None = None,
) -> tuple[Tensor, None]:
    """Blocked sliding-window attention (+ global tokens): q (B, H, T, Dh), k, v (B, Hkv, T, Dh) -> (out, None).

    ``block_size`` (queries per block) defaults to the window's reach, at least 32.
    """
    _check_self_attention(q, k)
    T = q.shape[2]
    causal = is_causal or mask_hides_future(mask, T, T)
    left, right = _reach(window, causal)
    block = block_size if block_size is not None else max(32, left + right + 1)
    if block < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    block = min(block, T)
    k, v = repeat_kv(k, q.shape[1]), repeat_kv(v, q.shape[1])  # (B, H, T, Dh)
    mask, bias = (None if mask is None else as_4d(mask)), (None if bias is None else as_4d(bias))
    gidx = global_index(global_tokens, T, q.device)
    out = _banded(q, k, v, mask, bias, scale, dropout, window, causal, gidx, block)  # (B, H, T, Dh)
    if gidx is not None:
        out = out.index_copy(2, gidx, _global_rows(q, k, v, mask, bias, scale, dropout, causal, gidx))
    return out, None


def sliding_window_dense(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    is_causal: bool, *, window: int = DEFAULT_WINDOW, global_tokens: Sequence[int] | Tensor | None = None,
    block_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The same attention through an explicit (T, T) pattern mask: (out (B, H, T, Dh), weights (B, H, T, T))."""
    del block_size  # the dense form has no blocks
    _check_self_attention(q, k)
    T = q.shape[2]
    pos = torch.arange(T, device=q.device)
    causal = is_causal or mask_hides_future(mask, T, T)
    pattern = window_pattern(pos, pos, window=window, causal=causal, global_idx=global_index(global_tokens, T, q.device))
    out, weights = get_backend("naive")(q, k, v, combine_masks(mask, pattern), bias, scale, dropout, False)
    assert weights is not None  # the naive backend always returns its probabilities
    return out, weights


@register_variant
class SlidingWindowAttention(AttentionVariant):
    """Longformer-style local attention with optional global tokens; no parameters.

    Args:
        window: keys per query (causal: the ``window`` latest positions; bidirectional: ``window // 2``
            on each side).
        global_tokens: positions that attend to and are attended by every position (e.g. ``(0,)`` for a
            [CLS] token); positions beyond a sequence's length are ignored.
        block_size: queries per block in the blocked computation (memory ~ T·(block_size + window)).
    """

    name = "sliding_window"
    supports_cross = False

    def __init__(
        self, window: int = DEFAULT_WINDOW, global_tokens: Sequence[int] | int | None = None, block_size: int | None = None
    ) -> None:
        super().__init__()
        _reach(window, causal=True)  # validates the window
        if isinstance(global_tokens, int):
            global_tokens = (global_tokens,)
        self.window, self.block_size = window, block_size
        self.global_tokens = None if global_tokens is None else tuple(int(t) for t in global_tokens)
        self._options = {"window": window, "global_tokens": self.global_tokens, "block_size": block_size}

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, None]:
        return sliding_window_attention(q, k, v, mask, bias, scale, dropout, is_causal, **self._options)

    def dense(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, Tensor]:
        return sliding_window_dense(q, k, v, mask, bias, scale, dropout, is_causal, **self._options)

    def decode_mask(self, input_pos: Tensor, S: int) -> Tensor:
        """Cached decoding is causal: the window of ``window`` latest slots plus the global slots."""
        k_pos = torch.arange(S, device=input_pos.device)
        gidx = global_index(self.global_tokens, S, input_pos.device)
        return window_pattern(input_pos, k_pos, window=self.window, causal=True, global_idx=gidx)  # (1, 1, T, S)

    def extra_repr(self) -> str:
        return f"window={self.window}, global_tokens={self.global_tokens}, block_size={self.block_size}"


register_backend(
    "sliding_window",
    BackendEntry(
        partial(sliding_window_attention, window=DEFAULT_WINDOW),
        partial(sliding_window_dense, window=DEFAULT_WINDOW),
        f"sliding window, window={DEFAULT_WINDOW}, no global tokens",
    ),
)
