"""Where attention happens in a model: every ``MultiHeadAttention`` found by walking the modules.

Dimension key: L layers of one stack, H query heads, Hkv key/value heads.

An :class:`AttentionSite` names one attention module and places it: its qualified module name
(``"decoder.layers.1.cross_attn"``), the block that holds it (``"decoder.layers.1"``, whose input
and output are the residual stream), the stack of blocks (``"decoder.layers"``), its index in that
stack, and whether it is self- or cross-attention (``module.cross``). Sites are grouped by stack and
kind — ``"encoder.self"``, ``"decoder.self"``, ``"decoder.cross"`` for an encoder-decoder, ``"self"``
for a one-stack model (GPT, BERT, ViT) — so that every family is handled by the same walker, with no
per-family code. A family whose layout the walker cannot read registers its own finder with
:func:`register_site_finder`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from attnlab.layers.attention import MultiHeadAttention

_STACK_SUFFIXES = ("layers", "layer", "blocks", "block", "h")

SiteFinder = Callable[[nn.Module], list["AttentionSite"]]
LayerSelection = int | str | Sequence[int | str] | Mapping[str, Sequence[int]] | None
_FINDERS: dict[type, SiteFinder] = {}


@dataclass(frozen=True)
class AttentionSite:
    """One attention module and its place in the model."""

    name: str  # qualified module name, e.g. "encoder.layers.0.self_attn"
    module: MultiHeadAttention
    block_name: str  # the block whose input/output is the residual stream ("" when none)
    block: nn.Module | None
    stack: str  # qualified name of the list of blocks ("" when none)
    layer: int  # index of the block within its stack
    kind: str  # "self" or "cross"
    group: str = ""  # "<stack label>.<kind>" ("decoder.cross"), or just the kind for a one-stack model

    @property
    def n_heads(self) -> int:
        return self.module.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.module.n_kv_heads


def register_site_finder(model_class: type, finder: SiteFinder) -> None:
    """Use ``finder(model) -> [AttentionSite]`` for ``model_class`` and its subclasses."""
    _FINDERS[model_class] = finder


def _block_of(modules: Mapping[str, nn.Module], name: str) -> tuple[str, str, int]:
    """(block name, stack name, layer index): the deepest ``<list>.<i>`` prefix of ``name``."""
    parts = name.split(".")
    for i in range(len(parts) - 2, 0, -1):
        stack = ".".join(parts[:i])
        if parts[i].isdigit() and isinstance(modules.get(stack), (nn.ModuleList, nn.Sequential)):
            return ".".join(parts[: i + 1]), stack, int(parts[i])
    if parts[0].isdigit() and isinstance(modules[""], (nn.ModuleList, nn.Sequential)):
        return parts[0], "", int(parts[0])
    return ".".join(parts[:-1]), "", 0


def stack_labels(stacks: Sequence[str]) -> dict[str, str]:
    """Short labels for stack names: list suffixes and the shared leading path dropped, so that
    ``model.encoder.layers`` / ``model.decoder.layers`` become ``encoder`` / ``decoder``, and a
    model with a single stack gets the empty label."""
    unique = list(dict.fromkeys(stacks))
    if len(unique) <= 1:
        return {s: "" for s in unique}
    parts = {s: [p for p in s.split(".") if p] for s in unique}
    for p in parts.values():
        if len(p) > 1 and p[-1] in _STACK_SUFFIXES:
            p.pop()
    while all(len(p) > 1 for p in parts.values()) and len({p[0] for p in parts.values()}) == 1:
        for p in parts.values():
            p.pop(0)
    return {s: ".".join(p) for s, p in parts.items()}


def walk_sites(model: nn.Module) -> list[AttentionSite]:
    """Every ``MultiHeadAttention`` in ``model`` (in module order) with its block, stack and group."""
    modules = dict(model.named_modules())
    found = []
    for name, module in modules.items():
        if isinstance(module, MultiHeadAttention):
            found.append((name, module, *_block_of(modules, name)))
    labels = stack_labels([stack for *_, stack, _ in found])
    sites = []
    for name, module, block_name, stack, layer in found:
        kind = "cross" if module.cross else "self"
        sites.append(
            AttentionSite(
                name=name, module=module, block_name=block_name, block=modules.get(block_name), stack=stack,
                layer=layer, kind=kind, group=f"{labels[stack]}.{kind}" if labels[stack] else kind,
            )
        )
    return sites


def attention_sites(model: nn.Module) -> list[AttentionSite]:
    """The attention sites of ``model`` (a registered finder for its class, else :func:`walk_sites`)."""
    for cls in type(model).__mro__:
        if cls in _FINDERS:
            return _FINDERS[cls](model)
    return walk_sites(model)


def site_groups(sites: Sequence[AttentionSite]) -> dict[str, list[AttentionSite]]:
    """Sites by group, each list in layer order."""
    groups: dict[str, list[AttentionSite]] = {}
    for s in sites:
        groups.setdefault(s.group, []).append(s)
    return {g: sorted(v, key=lambda s: s.layer) for g, v in groups.items()}


def _layer_ints(wanted: Sequence[int], group: list[AttentionSite], label: str) -> list[AttentionSite]:
    n = max(s.layer for s in group) + 1
    out = []
    for i in wanted:
        if not -n <= i < n:
            raise ValueError(f"layer {i} is out of range for {label} ({n} layers); use 0 .. {n - 1} or negatives")
        out += [s for s in group if s.layer == i % n]
    return out


def select_sites(sites: Sequence[AttentionSite], layers: LayerSelection = None) -> list[AttentionSite]:
    """The sites that ``layers`` asks for, in model order.

    ``layers`` is None (all), an int or ints (that block index in every stack; negatives count from
    the end), a glob pattern or patterns over site names and groups (``"decoder.cross"``,
    ``"encoder.layers.0.*"``), a mix of both, or a mapping ``{group: [layer ints]}``.
    """
    if not sites:
        raise ValueError(
            "this model has no attnlab MultiHeadAttention modules to capture; RNN models return their "
            "alignments directly (forward_with_alignments), and other classes need register_site_finder"
        )
    if layers is None:
        return list(sites)
    groups = site_groups(sites)
    chosen: list[AttentionSite] = []
    if isinstance(layers, Mapping):
        for g, ints in layers.items():
            if g not in groups:
                raise ValueError(f"unknown attention group {g!r}; this model has {sorted(groups)}")
            chosen += _layer_ints(list(ints), groups[g], g)
    else:
        items = [layers] if isinstance(layers, (int, str)) else list(layers)
        ints = [x for x in items if isinstance(x, int)]
        for g, members in groups.items():
            if ints:
                chosen += _layer_ints(ints, members, g)
        for pattern in (x for x in items if isinstance(x, str)):
            hit = [s for s in sites if fnmatch.fnmatchcase(s.name, pattern) or fnmatch.fnmatchcase(s.group, pattern)]
            if not hit:
                raise ValueError(
                    f"no attention site matches {pattern!r}; groups: {sorted(groups)}; "
                    f"sites: {[s.name for s in sites][:8]}{' ...' if len(sites) > 8 else ''}"
                )
            chosen += hit
    keep = {id(s) for s in chosen}
    return [s for s in sites if id(s) in keep]


def resolve_heads(heads: int | Sequence[int] | None, n_heads: int, where: str = "") -> list[int]:
    """Head indices in [0, n_heads) from None (all), an int or ints (negatives count from the end)."""
    if heads is None:
        return list(range(n_heads))
    wanted = [heads] if isinstance(heads, int) else list(heads)
    if not wanted:
        raise ValueError("heads is empty; pass None for all heads or at least one head index")
    out = []
    for h in wanted:
        if not isinstance(h, int) or not -n_heads <= h < n_heads:
            raise ValueError(f"head {h!r} is out of range{where}: the layer has {n_heads} heads (0 .. {n_heads - 1})")
        out.append(h % n_heads)
    if len(set(out)) != len(out):
        raise ValueError(f"heads {wanted} name a head twice")
    return out
