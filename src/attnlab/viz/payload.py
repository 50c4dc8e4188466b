"""Compact attention data for the HTML view: binning beyond a token budget, quantization, top-k rows.

Dimension key: L layers, H heads, T query length, S key length, K kept keys per row, n thumbnail side.

A group of patterns (L, H, T, S) becomes JSON-ready arrays (base64 of little-endian typed arrays):

    rowmax  float32 (L, H, T)       the largest weight of every row
    values  uint8   (L, H, T, S)    dense: weight / rowmax * 255
            uint8   (L, H, T, K)    top-k: the K largest weights of each row, same scaling
    index   uint16  (L, H, T, K)    top-k: the key of each kept weight
    thumbs  uint8   (L, H, n, n)    each pattern max-pooled to n x n, scaled to its own maximum

Dense storage is used while L*H*T*S stays under ``dense_limit``; beyond that each row keeps its K
largest weights, which is what a reader can see anyway. Sequences longer than ``max_tokens`` are
first *binned*: consecutive tokens are merged into at most ``max_tokens`` bins, rows averaged and
columns summed, so every row is still a distribution, and bins are labelled ``first…last``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode("ascii")


def bin_edges(n: int, max_bins: int) -> list[int]:
    """Boundaries [0, e1, ..., n] of at most ``max_bins`` near-equal bins of consecutive tokens."""
    if max_bins < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_bins}")
    bins = min(n, max_bins)
    return [round(i * n / bins) for i in range(bins + 1)]


def bin_labels(labels: Sequence[str], edges: Sequence[int]) -> list[str]:
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        first, last = labels[a].strip() or labels[a], labels[b - 1].strip() or labels[b - 1]
        out.append(labels[a] if b - a == 1 else f"{first}…{last} ({b - a})")
    return out


def bin_pattern(p: Tensor, row_edges: Sequence[int], col_edges: Sequence[int]) -> Tensor:
    """(..., T, S) -> (..., T', S'): rows averaged, columns summed within bins (rows stay distributions)."""
    T, S = p.shape[-2:]
    rows = torch.bucketize(torch.arange(T), torch.tensor(row_edges[1:-1]), right=True)  # (T,) bin of each row
    cols = torch.bucketize(torch.arange(S), torch.tensor(col_edges[1:-1]), right=True)
    row_map = torch.zeros(len(row_edges) - 1, T).index_put_((rows, torch.arange(T)), torch.tensor(1.0))
    row_map = row_map / row_map.sum(-1, keepdim=True)  # (T', T) averaging
    col_map = torch.zeros(S, len(col_edges) - 1).index_put_((torch.arange(S), cols), torch.tensor(1.0))  # (S, S')
    return row_map @ p.float() @ col_map  # (..., T', S')


def _thumbs(p: Tensor, n: int) -> np.ndarray:
    """(L, H, T, S) -> uint8 (L, H, n', n'') max-pooled thumbnails, each scaled to its own max."""
    L, H, T, S = p.shape
    x = p.reshape(L * H, 1, T, S).float()
    x = torch.nn.functional.adaptive_max_pool2d(x, (min(n, T), min(n, S)))[:, 0]  # (L*H, n', n'')
    peak = x.flatten(1).amax(-1).clamp(min=1e-12)[:, None, None]
    return (x / peak * 255).round().to(torch.uint8).reshape(L, H, *x.shape[-2:]).numpy()


def group_payload(
    name: str,
    patterns: Tensor,
    queries: Sequence[str],
    keys: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    max_tokens: int = 1024,
    dense_limit: int = 8_000_000,
    top_k: int = 16,
    thumb: int = 48,
) -> dict[str, Any]:
    """JSON-ready data of one attention group; patterns (L, H, T, S) with T/S query/key labels."""
    if patterns.dim() != 4:
        raise ValueError(f"patterns must be (L, H, T, S) for one example, got shape {tuple(patterns.shape)}")
    L, H, T, S = patterns.shape
    if len(queries) != T or len(keys) != S:
        raise ValueError(f"{len(queries)} query and {len(keys)} key labels for patterns with T={T}, S={S}")
    p = patterns.detach().float().cpu()
    binned = T > max_tokens or S > max_tokens
    if binned:
        re, ce = bin_edges(T, max_tokens), bin_edges(S, max_tokens)
        p, queries, keys = bin_pattern(p, re, ce), bin_labels(queries, re), bin_labels(keys, ce)
        T, S = p.shape[-2:]
    rowmax = p.amax(-1)  # (L, H, T)
    scaled = p / rowmax.clamp(min=1e-12)[..., None]
    out: dict[str, Any] = {
        "name": name, "queries": list(queries), "keys": list(keys), "T": T, "S": S, "binned": binned,
        "layers": list(layers if layers is not None else range(L)),
        "heads": list(heads if heads is not None else range(H)),
        "rowmax": _b64(rowmax.numpy().astype(np.float32)),
    }
    if L * H * T * S <= dense_limit:
        out.update(format="dense", values=_b64((scaled * 255).round().to(torch.uint8).numpy()))
    else:
        k = min(top_k, S)
        w, idx = scaled.topk(k, dim=-1)  # (L, H, T, K)
        out.update(format="topk", k=k, values=_b64((w * 255).round().to(torch.uint8).numpy()),
                   index=_b64(idx.to(torch.int32).numpy().astype(np.uint16)))
    th = _thumbs(p, thumb)
    out["thumb"] = {"rows": th.shape[2], "cols": th.shape[3], "data": _b64(th)}
    return out
