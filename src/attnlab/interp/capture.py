"""Capture q, k, v, attention patterns and the residual stream at named points, on every family.

Dimension key: B batch, H query heads, h selected heads, Hkv key/value heads, T query length,
T' captured query rows (T unless ``queries`` picks fewer), S key length, Dh head dim, D model width,
L captured layers.

Capture points are named ``"<site>.<point>"`` for attention sites and ``"<block>.<point>"`` for
the blocks holding them (site and block names come from :mod:`attnlab.interp.sites`):

    <site>.q            (B, h, T', Dh)   queries of the selected heads, after RoPE
    <site>.k, <site>.v  (B, h, S, Dh)    the key/value head serving each selected head (GQA), after
                                         RoPE and the KV cache
    <site>.pattern      (B, h, T', S)    attention probabilities, recomputed in float32 from q and k
    <site>.allowed      (B, 1|h, T', S)  bool: which keys each query could see (mask, causality)
    <block>.resid_pre   (B, T', D)       the residual stream entering the block
    <block>.resid_post  (B, T', D)       ... and leaving it

Only the requested sites get a hook, and patterns are recomputed through
``attention(..., need_weights=True)`` for the requested heads and query rows alone, while the
model's own call keeps its fused kernel: memory grows with layers x heads x T' x S asked for, never
with the whole model. Probabilities are those before attention dropout (identical in eval mode).
Capturing changes no output: the hooks only read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.core.attention import attention, get_backend
from attnlab.core.masks import causal_mask, combine_masks
from attnlab.interp.sites import AttentionSite, LayerSelection, attention_sites, resolve_heads, select_sites

POINTS = ("q", "k", "v", "pattern", "allowed", "resid_pre", "resid_post")
SITE_POINTS = ("q", "k", "v", "pattern", "allowed")
QuerySelection = int | slice | Sequence[int] | Tensor | None


def _as_4d(t: Tensor) -> Tensor:
    return t.reshape((1,) * (4 - t.dim()) + tuple(t.shape))  # (B|1, H|1, T|1, S|1)


def _slice_heads_rows(t: Tensor | None, heads: Tensor, rows: Tensor | None) -> Tensor | None:
    """A mask or bias broadcastable to (B, H, T, S), restricted to the selected heads and rows."""
    if t is None:
        return None
    t = _as_4d(t)
    if t.shape[1] > 1:
        t = t.index_select(1, heads)  # (B|1, h, T|1, S|1)
    if rows is not None and t.shape[2] > 1:
        t = t.index_select(2, rows)  # (B|1, h|1, T', S|1)
    return t


def _query_rows(queries: QuerySelection, T: int, device: torch.device) -> Tensor | None:
    """Indices into the query axis of one call, or None for all rows."""
    if queries is None:
        return None
    if isinstance(queries, slice):
        rows = torch.arange(T, device=device)[queries]
    else:
        rows = torch.as_tensor([queries] if isinstance(queries, int) else queries, device=device).long().flatten()
        if rows.numel() and (rows.min() < -T or rows.max() >= T):
            raise ValueError(f"queries {rows.tolist()} fall outside the {T} query positions of this call")
        rows = rows % T
    if rows.numel() == 0:
        raise ValueError(f"queries={queries!r} selects no query rows out of {T}")
    return rows


def _first_tensor(args: tuple, kwargs: dict[str, Any]) -> Tensor | None:
    for value in (*args, kwargs.get("x"), *kwargs.values()):
        if isinstance(value, Tensor):
            return value
    return None


def _pattern(q: Tensor, k: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float | None,
             heads: Tensor, rows: Tensor | None, backend: Any) -> Tensor:
    """(B, h, T', S) probabilities of the selected heads, in float32, from the backend's dense twin.

    Exact backends are recomputed for the selected rows only; an efficient variant (sliding window,
    Linformer, Performer) needs every row to place its pattern, so its rows are selected afterwards.
    """
    exact = isinstance(backend, str) and getattr(get_backend(backend), "dense", None) is None
    b = _slice_heads_rows(bias, heads, rows if exact else None)
    b = None if b is None else b.float()
    m = _slice_heads_rows(mask, heads, rows if exact else None)
    qs = q if rows is None or not exact else q.index_select(2, rows)  # (B, h, T', Dh)
    kf = k.float()  # keys double as values: only the probabilities are kept
    _, w = attention(qs.float(), kf, kf, m, b, scale, backend=backend, need_weights=True)
    if rows is not None and not exact:
        w = w.index_select(2, rows)  # (B, h, T', S)
    return w


class Capture:
    """What one :func:`capturing` session recorded: tensors by point name, one entry per call."""

    def __init__(self, sites: list[AttentionSite], heads: dict[str, list[int]], points: tuple[str, ...]) -> None:
        self.sites = sites
        self.heads = heads  # site name -> captured head indices
        self.points = points
        self.store: dict[str, list[Tensor]] = {}

    # ---------------------------------------------------------------- raw access
    def names(self) -> list[str]:
        return list(self.store)

    def __contains__(self, name: str) -> bool:
        return name in self.store

    def calls(self, name: str) -> list[Tensor]:
        """Every tensor recorded under ``name``, one per call of that module."""
        if name not in self.store:
            raise KeyError(f"nothing captured under {name!r}; captured: {self.names()[:12]}")
        return self.store[name]

    def __getitem__(self, name: str) -> Tensor:
        """The tensor at ``name``; several calls (incremental decoding) are joined along the query
        axis, except k and v, whose last call already holds the whole cache."""
        calls = self.calls(name)
        point = name.rsplit(".", 1)[-1]
        if len(calls) == 1 or point in ("k", "v"):
            return calls[-1]
        dim = 1 if point.startswith("resid") else -2
        try:
            return torch.cat(calls, dim=dim)
        except RuntimeError:
            raise ValueError(
                f"{name} was recorded {len(calls)} times with shapes {[tuple(c.shape) for c in calls]}, "
                "which do not join along the query axis (a decoding loop without a KV cache?); read them one "
                "by one with Capture.calls(name)"
            ) from None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for calls in self.store.values() for t in calls)

    # ---------------------------------------------------------------- by group and layer
    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(s.group for s in self.sites))

    def group_sites(self, group: str | None = None) -> list[AttentionSite]:
        """The captured sites of ``group`` (default: the only group) in layer order."""
        groups = self.groups
        if group is None:
            if len(groups) != 1:
                raise ValueError(f"this capture spans groups {groups}; pass group=... to pick one")
            group = groups[0]
        chosen = sorted((s for s in self.sites if s.group == group), key=lambda s: s.layer)
        if not chosen:
            raise ValueError(f"no captured site in group {group!r}; captured groups: {groups}")
        return chosen

    def layers(self, group: str | None = None) -> list[int]:
        return [s.layer for s in self.group_sites(group)]

    def site(self, layer: int | str, group: str | None = None) -> AttentionSite:
        if isinstance(layer, str):
            for s in self.sites:
                if s.name == layer:
                    return s
            raise KeyError(f"site {layer!r} was not captured; captured: {[s.name for s in self.sites]}")
        for s in self.group_sites(group):
            if s.layer == layer:
                return s
        raise KeyError(f"layer {layer} was not captured in {group or self.groups[0]!r}; captured {self.layers(group)}")

    def pattern(self, layer: int | str, group: str | None = None) -> Tensor:
        """(B, h, T', S) attention probabilities of one layer (an int within ``group``, or a site name)."""
        return self[f"{self.site(layer, group).name}.pattern"]

    def stack(self, point: str = "pattern", group: str | None = None) -> Tensor:
        """(L, ...) one point of every captured layer of ``group``, stacked in layer order."""
        sites = self.group_sites(group)
        if point in ("resid_pre", "resid_post"):
            return torch.stack([self[f"{s.block_name}.{point}"] for s in sites])
        return torch.stack([self[f"{s.name}.{point}"] for s in sites])  # (L, B, h, T', S) for patterns

    def __repr__(self) -> str:
        mib = self.nbytes / 2**20
        return f"Capture({len(self.sites)} sites, groups={self.groups}, points={self.points}, {mib:.2f} MiB)"


class _Recorder:
    """Installs the hooks of one capture session and fills its :class:`Capture`."""

    def __init__(self, capture: Capture, queries: QuerySelection, to: torch.device | str | None) -> None:
        self.capture, self.queries, self.to = capture, queries, to

    def put(self, name: str, t: Tensor) -> None:
        t = t.detach()
        self.capture.store.setdefault(name, []).append(t if self.to is None else t.to(self.to))

    @torch.no_grad()
    def record_site(self, site: AttentionSite, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                    bias: Tensor | None, scale: float | None, is_causal: bool, backend: Any) -> None:
        points, (B, H, T, _), S = self.capture.points, q.shape, k.shape[2]
        heads = torch.tensor(self.capture.heads[site.name], device=q.device)
        kv_heads = heads // (H // k.shape[1])  # the key/value head serving each query head (GQA)
        rows = _query_rows(self.queries, T, q.device)
        if is_causal:
            mask = combine_masks(mask, causal_mask(T, S, device=q.device))  # (B|1, 1, T, S)
        qs = q.index_select(1, heads)  # (B, h, T, Dh)
        ks = k.index_select(1, kv_heads)  # (B, h, S, Dh)
        if "q" in points:
            self.put(f"{site.name}.q", qs if rows is None else qs.index_select(2, rows))  # (B, h, T', Dh)
        if "k" in points:
            self.put(f"{site.name}.k", ks)
        if "v" in points:
            self.put(f"{site.name}.v", v.index_select(1, kv_heads))
        if "pattern" in points:
            self.put(f"{site.name}.pattern", _pattern(qs, ks, mask, bias, scale, heads, rows, backend))
        if "allowed" in points:
            m = _slice_heads_rows(mask, heads, rows)
            allowed = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=q.device) if m is None else m
            T_kept = T if rows is None else rows.numel()
            self.put(f"{site.name}.allowed", allowed.expand(B, allowed.shape[1], T_kept, S))

    def site_hook(self, site: AttentionSite, previous: Callable[..., None] | None) -> Callable[..., None]:
        def hook(*, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, bias: Tensor | None = None,
                 scale: float | None = None, is_causal: bool = False, **extra: Any) -> None:
            if previous is not None:  # another capture session is active on the same module
                previous(q=q, k=k, v=v, mask=mask, bias=bias, scale=scale, is_causal=is_causal, **extra)
            backend = extra.get("backend")
            if backend is None:  # older callers: the module's own variant, else exact attention
                backend = getattr(site.module, "attn_variant", None) or "naive"
            self.record_site(site, q, k, v, mask, bias, scale, is_causal, backend)

        return hook

    def block_hooks(self, block_name: str, block: nn.Module) -> list[Any]:
        rows_of = self.queries

        def keep(point: str, t: Tensor | None) -> None:
            if t is None:
                return
            rows = _query_rows(rows_of, t.shape[1], t.device)
            kept = t.clone() if rows is None else t.index_select(1, rows)  # a copy: later in-place ops cannot touch it
            self.put(f"{block_name}.{point}", kept)  # (B, T', D)

        handles = []
        if "resid_pre" in self.capture.points:
            handles.append(block.register_forward_pre_hook(
                lambda _m, args, kwargs: keep("resid_pre", _first_tensor(args, kwargs)), with_kwargs=True))
        if "resid_post" in self.capture.points:
            handles.append(block.register_forward_hook(
                lambda _m, _a, _k, out: keep("resid_post", out if isinstance(out, Tensor) else _first_tensor(out, {})),
                with_kwargs=True))
        return handles


def _check_points(points: str | Sequence[str]) -> tuple[str, ...]:
    chosen = (points,) if isinstance(points, str) else tuple(points)
    unknown = [p for p in chosen if p not in POINTS]
    if unknown or not chosen:
        raise ValueError(f"unknown capture points {unknown or chosen}; choose from {POINTS}")
    return chosen


@contextlib.contextmanager
def capturing(
    model: nn.Module,
    *,
    layers: LayerSelection = None,
    heads: int | Sequence[int] | None = None,
    points: str | Sequence[str] = ("pattern",),
    queries: QuerySelection = None,
    to: torch.device | str | None = None,
) -> Iterator[Capture]:
    """Record capture points while the block runs; hooks are removed on exit, even on errors.

    Args:
        layers: which attention sites (see :func:`attnlab.interp.sites.select_sites`); None = all.
        heads: query-head indices to keep (None = all), the same for every selected site.
        points: names from :data:`POINTS`.
        queries: query rows to keep in every call (int, slice, indices); None = all.
        to: move captured tensors there (e.g. "cpu" to keep accelerator memory free).
    """
    chosen_points = _check_points(points)
    sites = select_sites(attention_sites(model), layers)
    head_map = {s.name: resolve_heads(heads, s.n_heads, f" for {s.name}") for s in sites}
    capture = Capture(sites, head_map, chosen_points)
    recorder = _Recorder(capture, queries, to)
    saved: list[tuple[nn.Module, Any]] = []
    handles: list[Any] = []
    try:
        if any(p in SITE_POINTS for p in chosen_points):
            for s in sites:
                saved.append((s.module, s.module.capture_fn))
                s.module.capture_fn = recorder.site_hook(s, s.module.capture_fn)
        blocks = {s.block_name: s.block for s in sites if s.block is not None}
        for name, block in blocks.items():
            handles += recorder.block_hooks(name, block)
        yield capture
    finally:
        for module, previous in reversed(saved):
            module.capture_fn = previous
        for h in handles:
            h.remove()


def run_with_capture(
    model: nn.Module,
    *inputs: Any,
    layers: LayerSelection = None,
    heads: int | Sequence[int] | None = None,
    points: str | Sequence[str] = ("pattern",),
    queries: QuerySelection = None,
    to: torch.device | str | None = None,
    method: str | None = None,
    grad: bool = False,
    **kwargs: Any,
) -> tuple[Any, Capture]:
    """Run ``model(*inputs, **kwargs)`` (or ``model.<method>(...)``) once and return
    ``(output, capture)``; see :func:`capturing` for the selection arguments. Runs under
    ``torch.no_grad()`` unless ``grad=True``; the output is exactly what the model returns uncaptured.
    """
    fn = model if method is None else getattr(model, method)
    with capturing(model, layers=layers, heads=heads, points=points, queries=queries, to=to) as capture:
        with contextlib.nullcontext() if grad else torch.no_grad():
            output = fn(*inputs, **kwargs)
    return output, capture


class CaptureMixin:
    """Adds ``model.run_with_capture(*inputs, layers=..., heads=...)`` to an ``nn.Module`` class."""

    def run_with_capture(self, *inputs: Any, **kwargs: Any) -> tuple[Any, Capture]:
        return run_with_capture(self, *inputs, **kwargs)  # type: ignore[arg-type]
