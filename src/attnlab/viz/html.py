"""A self-contained interactive HTML attention view: head view and model view, offline.

Dimension key: L layers, H heads, T query length, S key length.

    from attnlab.viz import AttentionGroup, save_attention_view
    save_attention_view("view.html", capture, prepared)          # every captured group
    save_attention_view("view.html", {"cross": AttentionGroup(p, src_labels, tgt_labels)})

The page inlines its style, script (``attention_view.js``) and data (JSON inside a
``<script type="application/json">`` tag, with ``</`` escaped), so it opens from disk with no network
and no external scripts. Choose the attention group, the layer and the heads; hover a query token to
see where it looks, or a key token to see who looks at it; the model view shows every layer x head
pattern as a thumbnail (or, with a query clicked, that query's row per head). Sequences longer than
``max_tokens`` (default 1,024) are binned and rows keep their top-k keys beyond a size budget (see
:mod:`attnlab.viz.payload`), so the page stays small and responsive.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from torch import Tensor

from attnlab.viz.payload import group_payload

_TEMPLATE = "attention_view.html"
_SCRIPT = "attention_view.js"


@dataclass
class AttentionGroup:
    """Patterns (L, H, T, S) of one attention group for one example, with token labels."""

    patterns: Tensor
    queries: Sequence[str]
    keys: Sequence[str]
    layers: Sequence[int] | None = None
    heads: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if self.patterns.dim() == 2:
            self.patterns = self.patterns[None, None]  # (1, 1, T, S): e.g. one RNN alignment matrix
        elif self.patterns.dim() == 3:
            self.patterns = self.patterns[None]  # (1, H, T, S)


def _asset(name: str) -> str:
    return resources.files("attnlab.viz").joinpath(name).read_text(encoding="utf-8")


def groups_from_capture(capture: Any, prepared: Any = None, *, batch_index: int = 0) -> dict[str, AttentionGroup]:
    """One :class:`AttentionGroup` per captured group (needs the "pattern" point).

    ``prepared`` (:class:`attnlab.interp.PreparedInputs`) supplies the token labels; without it
    tokens are labelled by position.
    """
    if "pattern" not in capture.points:
        raise ValueError("the capture holds no attention patterns; capture with points=('pattern', ...)")
    sides = prepared.group_sides(capture.sites) if prepared is not None else {}
    out: dict[str, AttentionGroup] = {}
    for group in capture.groups:
        p = capture.stack("pattern", group)[:, batch_index]  # (L, h, T, S)
        if group in sides:
            q_labels, k_labels = (prepared.sides[name].labels for name in sides[group])
        else:
            q_labels, k_labels = [str(i) for i in range(p.shape[-2])], [str(j) for j in range(p.shape[-1])]
        first = capture.group_sites(group)[0]
        out[group] = AttentionGroup(p, q_labels, k_labels, capture.layers(group), capture.heads[first.name])
    return out


def render_attention_view(
    groups: Mapping[str, AttentionGroup],
    *,
    title: str = "attnlab attention view",
    max_tokens: int = 1024,
    dense_limit: int = 8_000_000,
    top_k: int = 16,
) -> str:
    """The HTML page (a string) for ``groups``; see the module docstring."""
    if not groups:
        raise ValueError("nothing to show: pass at least one attention group")
    if not 1 <= max_tokens <= 65535:
        raise ValueError(f"max_tokens must lie in [1, 65535], got {max_tokens}")
    payload = {
        "title": title,
        "groups": [
            group_payload(name, g.patterns, g.queries, g.keys, layers=g.layers, heads=g.heads,
                          max_tokens=max_tokens, dense_limit=dense_limit, top_k=top_k)
            for name, g in groups.items()
        ],
    }
    data = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("</", "<\\/")
    parts = {"TITLE": html.escape(title), "DATA": data, "SCRIPT": _asset(_SCRIPT)}
    return re.sub(r"\{\{(TITLE|DATA|SCRIPT)\}\}", lambda m: parts[m.group(1)], _asset(_TEMPLATE))


def save_attention_view(
    path: str | Path,
    source: Any,
    prepared: Any = None,
    *,
    title: str | None = None,
    batch_index: int = 0,
    **options: Any,
) -> Path:
    """Write the view of ``source`` (a :class:`~attnlab.interp.Capture` or a mapping of groups) to ``path``."""
    groups = source if isinstance(source, Mapping) else groups_from_capture(source, prepared, batch_index=batch_index)
    page = render_attention_view(groups, title=title or "attnlab attention view", **options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
