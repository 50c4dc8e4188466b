"""Matplotlib figures of attention: heatmaps with token labels, head grids, RNN alignments,
decoder steps, ViT patch attention over the image, and layer x head grids of head-role scores.

Dimension key: L layers, H heads, T query length (rows), S key length (columns), P patches,
Hi x Wi image size, C channels.

Every function takes tensors or arrays, returns a :class:`matplotlib.figure.Figure` (built without
pyplot, so nothing global changes and no display is needed) and draws into ``ax`` when one is given.
Save with ``fig.savefig("attn.png", dpi=150)``. Long sequences keep every ``k``-th tick label so
that the labels stay readable; the heatmap itself is never subsampled.

    plot_attention(w (T, S), queries, keys)           one matrix: self, cross or decoder self-attention
    plot_heads(p (L, H, T, S) or (H, T, S), ...)      a layer x head grid, or averaged over heads/layers
    plot_alignment(a (T, S), source, target)          RNN (Bahdanau / Luong) alignments, Bahdanau's style
    plot_decoder_steps(w (T, S), tokens, prompt_len)  which keys each generated token was produced from
    plot_patch_attention(image, w (P,), grid)         ViT: patch attention drawn over the image
    plot_head_scores(results)                         head-role scores as layer x head grids
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

ArrayLike = Any  # torch.Tensor | np.ndarray | nested lists


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A float numpy array from a tensor (any device/dtype) or array-like."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _visible(label: str) -> str:
    """Newlines and bare spaces made visible in a tick label."""
    label = label.replace("\n", "⏎")
    return label.replace(" ", "␣") if label and not label.strip() else label


def _ticks(ax: Axes, labels: Sequence[str] | None, n: int, axis: str, max_labels: int, rotate: bool = False) -> None:
    if labels is None:
        labels = [str(i) for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} {axis}-axis labels for {n} {'columns' if axis == 'x' else 'rows'}")
    step = max(1, math.ceil(n / max_labels))
    pos = list(range(0, n, step))
    text = [_visible(str(labels[i])) for i in pos]
    size = 8 if len(pos) <= 32 else 6
    if axis == "x":
        ax.set_xticks(pos, text, rotation=90 if rotate else 0, fontsize=size)
    else:
        ax.set_yticks(pos, text, fontsize=size)


def _matrix(w: ArrayLike, what: str) -> np.ndarray:
    a = to_numpy(w)
    if a.ndim != 2:
        raise ValueError(
            f"{what} needs one (T, S) matrix, got shape {a.shape}; pick a head (w[h]) or use "
            "plot_heads(..., average=...)"
        )
    return a


def plot_attention(
    weights: ArrayLike,
    queries: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str = "viridis",
    vmax: float | None = None,
    colorbar: bool = True,
    max_labels: int = 60,
) -> Figure:
    """Heatmap of one (T, S) attention matrix: query tokens down the side, key tokens across."""
    w = _matrix(weights, "plot_attention")
    T, S = w.shape
    fig, ax = _new_axes(ax, (min(16.0, 2.5 + 0.28 * S), min(16.0, 2.0 + 0.28 * T)))
    im = ax.imshow(w, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    _ticks(ax, keys, S, "x", max_labels, rotate=True)
    _ticks(ax, queries, T, "y", max_labels)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        fig.colorbar(im, ax=ax, shrink=0.8, label="attention weight")
    return fig


def _reduce(p: np.ndarray, average: str | None) -> tuple[np.ndarray, list[str], list[str]]:
    """(rows, cols, T, S) panels and their row/column titles after averaging."""
    L, H = p.shape[:2]
    if average is None:
        return p, [f"layer {i}" for i in range(L)], [f"head {j}" for j in range(H)]
    if average == "heads":
        return p.mean(1, keepdims=True), [f"layer {i}" for i in range(L)], ["mean of heads"]
    if average == "layers":
        return p.mean(0, keepdims=True), ["mean of layers"], [f"head {j}" for j in range(H)]
    if average == "all":
        return p.mean((0, 1), keepdims=True), ["mean of layers"], ["mean of heads"]
    raise ValueError(f"average must be None, 'heads', 'layers' or 'all', got {average!r}")


def plot_heads(
    patterns: ArrayLike,
    queries: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    average: str | None = None,
    cmap: str = "viridis",
    max_labels: int = 30,
    panel: float = 2.6,
    title: str | None = None,
) -> Figure:
    """A grid of heatmaps: one row per layer, one column per head (``patterns`` (L, H, T, S) or (H, T, S)).

    ``average``: None (every head), "heads", "layers" or "all". ``layers``/``heads`` name the rows
    and columns (e.g. the captured indices). Labels are drawn on the outer panels only.
    """
    p = to_numpy(patterns)
    p = p[None] if p.ndim == 3 else p
    if p.ndim != 4:
        raise ValueError(f"plot_heads needs (L, H, T, S) or (H, T, S), got shape {p.shape}")
    panels, row_names, col_names = _reduce(p, average)
    if average is None or average == "heads":
        row_names = [f"layer {i}" for i in layers] if layers is not None else row_names
    if average is None or average == "layers":
        col_names = [f"head {j}" for j in heads] if heads is not None else col_names
    R, C, T, S = panels.shape
    fig = Figure(figsize=(1.2 + panel * C, 0.9 + panel * R), layout="constrained")
    axes = np.atleast_2d(fig.subplots(R, C, squeeze=False))
    vmax = float(panels.max()) or 1.0
    im = None
    for r in range(R):
        for c in range(C):
            ax = axes[r, c]
            im = ax.imshow(panels[r, c], cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
            ax.set_title(f"{row_names[r]}, {col_names[c]}", fontsize=8)
            if r == R - 1:
                _ticks(ax, keys, S, "x", max_labels, rotate=True)
            else:
                ax.set_xticks([])
            if c == 0:
                _ticks(ax, queries, T, "y", max_labels)
            else:
                ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_alignment(
    alignment: ArrayLike,
    source: Sequence[str] | None = None,
    target: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    max_labels: int = 60,
) -> Figure:
    """An RNN attention alignment (T target steps, S source tokens), in the style of Bahdanau et al.
    (2015, fig. 3): grey scale, source across the top, target down the side. A (B, T, S) batch
    shows its first example."""
    a = to_numpy(alignment)
    a = a[0] if a.ndim == 3 else a
    fig = plot_attention(a, target, source, ax=ax, cmap="gray", vmax=1.0, colorbar=False, max_labels=max_labels)
    ax = ax or fig.axes[0]
    if title:
        ax.set_title(title, fontsize=10, pad=12)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    return fig


def plot_decoder_steps(
    weights: ArrayLike,
    tokens: Sequence[str],
    *,
    prompt_len: int,
    keys: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    max_labels: int = 60,
) -> Figure:
    """What each generated token was produced from: one row per generation step.

    ``weights`` (T, S) (or (H, T, S), averaged over heads) are the attention rows of the decoder's
    inputs ``tokens`` (T); the step that generated ``tokens[i + 1]`` is row i, so rows
    ``prompt_len - 1 .. T - 2`` are shown, labelled by the token they produced. ``keys`` default to
    ``tokens`` (self-attention); pass the source tokens for cross-attention. Keys a step could not
    see are hatched, the prompt/generated boundary is a dashed line, and each row's strongest key is
    marked.
    """
    w = to_numpy(weights)
    w = w.mean(0) if w.ndim == 3 else _matrix(w, "plot_decoder_steps")
    T, S = w.shape
    if len(tokens) != T or not 1 <= prompt_len < T:
        raise ValueError(f"need len(tokens) == T ({len(tokens)} vs {T}) and 1 <= prompt_len < T (got {prompt_len})")
    rows = np.arange(prompt_len - 1, T - 1)
    steps = w[rows]  # (steps, S)
    self_attn = keys is None
    keys = list(tokens) if keys is None else list(keys)
    fig, ax = _new_axes(ax, (min(16.0, 2.5 + 0.28 * S), min(12.0, 1.6 + 0.3 * len(rows))))
    shown = np.ma.masked_where(np.arange(S)[None, :] > rows[:, None], steps) if self_attn else steps
    im = ax.imshow(shown, cmap="magma_r", vmin=0.0, aspect="auto", interpolation="nearest")
    ax.set_facecolor("#eeeeee")
    ax.scatter(steps.argmax(1), np.arange(len(rows)), marker="o", s=10, facecolors="none", edgecolors="#1f6feb")
    if self_attn:
        ax.axvline(prompt_len - 0.5, color="#1f6feb", ls="--", lw=1)
    _ticks(ax, keys, S, "x", max_labels, rotate=True)
    _ticks(ax, [f"{k + 1}: {tokens[i + 1]!r}" for k, i in enumerate(rows)], len(rows), "y", max_labels)
    ax.set_xlabel("attended token")
    ax.set_ylabel("generated token (step: token)")
    ax.set_title(title or "decoder steps", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="attention weight")
    return fig


def patch_weights(row: ArrayLike, grid: tuple[int, int], *, prefix: int = 1) -> np.ndarray:
    """A ViT attention row over [prefix tokens, patches] (S,) -> (rows, cols) weights of the patches."""
    r = to_numpy(row)
    n = grid[0] * grid[1]
    if r.ndim != 1 or r.shape[0] != prefix + n:
        raise ValueError(f"expected a row of {prefix} prefix tokens + {n} patches, got shape {r.shape}")
    return r[prefix:].reshape(grid)


def _image_hwc(image: ArrayLike) -> np.ndarray:
    img = to_numpy(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)  # (C, Hi, Wi) -> (Hi, Wi, C)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo and (lo < 0 or hi > 1) else img


def plot_patch_attention(
    image: ArrayLike,
    weights: ArrayLike,
    grid: tuple[int, int] | None = None,
    *,
    ax: Axes | None = None,
    alpha: float = 0.55,
    cmap: str = "inferno",
    title: str | None = None,
    smooth: bool = True,
) -> Figure:
    """ViT patch attention over the image: ``weights`` (P,) or (rows, cols), upsampled to the image.

    ``image`` is (Hi, Wi, C), (C, Hi, Wi) or (Hi, Wi); normalized pixels are rescaled for display.
    """
    img = _image_hwc(image)
    w = to_numpy(weights)
    if w.ndim == 1:
        if grid is None:
            side = math.isqrt(w.shape[0])
            if side * side != w.shape[0]:
                raise ValueError(f"{w.shape[0]} patch weights are not a square grid; pass grid=(rows, cols)")
            grid = (side, side)
        w = w.reshape(grid)
    Hi, Wi = img.shape[:2]
    fig, ax = _new_axes(ax, (4.5, 4.5 * Hi / Wi))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, extent=(0, Wi, Hi, 0))
    im = ax.imshow(w, cmap=cmap, alpha=alpha, extent=(0, Wi, Hi, 0), interpolation="bilinear" if smooth else "nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.7, label="attention")
    return fig


def plot_head_scores(
    results: Sequence[Any], names: Sequence[str] | None = None, *, annotate: bool = True, columns: int = 4
) -> Figure:
    """Layer x head grids of head-role scores, one panel per (attention group, role).

    ``results`` are :class:`attnlab.interp.HeadScores`; ``names`` default to every scored role plus
    "broad" (normalized entropy). Target roles use a diverging map centred on chance (0); "broad"
    and "focused" run from 0 to 1. Values are written in the cells of small grids.
    """
    from attnlab.interp.heads import RANKINGS

    wanted = names or [n for n in RANKINGS if n != "focused"]
    panels = [(res, n) for res in results for n in wanted if res.grid(n) is not None]
    if not panels:
        raise ValueError("no head scores to draw")
    C = min(columns, len(panels))
    R = math.ceil(len(panels) / C)
    L = max(len(r.layers) for r in results)
    H = max(len(r.heads) for r in results)
    cell = min(0.45, 3.0 / max(L, H))
    fig = Figure(figsize=(C * (1.4 + cell * H), R * (1.0 + cell * L)), layout="constrained")
    axes = fig.subplots(R, C, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (res, name) in zip(axes, panels, strict=False):
        g = to_numpy(res.grid(name))
        unit = name in ("broad", "focused")
        im = ax.imshow(np.ma.masked_invalid(g), cmap="viridis" if unit else "RdBu_r", vmin=0.0 if unit else -1.0,
                       vmax=1.0, aspect="equal", interpolation="nearest")
        if annotate and g.size <= 64:
            for (i, j), v in np.ndenumerate(g):
                if not math.isnan(v):
                    dark = abs(v) > 0.6 if not unit else v < 0.5
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if dark else "k")
        ax.set_title(f"{res.group}: {name}", fontsize=8)
        step = max(1, math.ceil(max(L, H) / 12))
        ax.set_xticks(range(0, len(res.heads), step), [str(h) for h in res.heads][::step], fontsize=6)
        ax.set_yticks(range(0, len(res.layers), step), [str(layer) for layer in res.layers][::step], fontsize=6)
        ax.set_xlabel("head", fontsize=7)
        ax.set_ylabel("layer", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    return fig
