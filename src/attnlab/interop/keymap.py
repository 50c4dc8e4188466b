"""Key-map tables: how one of our state-dict keys corresponds to HF checkpoint keys.

Dimension key: D model width, V vocabulary, L layers (the ``{i}`` placeholder ranges over them).

A family's table is a list of :class:`Rule` rows::

    Rule("blocks.{i}.self_attn.qkv_proj.weight", "h.{i}.attn.c_attn.weight", TRANSPOSE)
    Rule("blocks.{i}.self_attn.qkv_proj.weight",
         ("layer.{i}.attention.self.query.weight", "layer.{i}.attention.self.key.weight",
          "layer.{i}.attention.self.value.weight"), FUSE)

Placeholders in braces (``{i}``, or e.g. ``{e}``/``{d}`` for encoder/decoder stacks) are expanded by
:func:`expand_rules` with the counts a family's adapter reports for a given config. A
:class:`Transform` is a pair of tiny functions: ``to_ours(list of HF tensors) -> our tensor`` and
``to_hf(our tensor) -> list of HF tensors``; they must be exact inverses (tests round-trip them).
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class Transform:
    """Converts between the HF tensors of one rule and our single tensor."""

    name: str
    to_ours: Callable[[list[Tensor]], Tensor]
    to_hf: Callable[[Tensor, int], list[Tensor]]  # (our tensor, number of HF keys) -> HF tensors


def _one(ts: list[Tensor]) -> Tensor:
    if len(ts) != 1:
        raise ValueError(f"this transform maps exactly one HF tensor, got {len(ts)}")
    return ts[0]


IDENTITY = Transform("identity", _one, lambda t, n: [t])
# HF GPT-2 stores linear layers as Conv1D with weight (in, out); ours are nn.Linear (out, in).
TRANSPOSE = Transform("transpose", lambda ts: _one(ts).t().contiguous(), lambda t, n: [t.t().contiguous()])
# Separate q, k, v (or k, v) projections stacked along the output dim into one fused projection.
FUSE = Transform("fuse", lambda ts: torch.cat(ts, dim=0), lambda t, n: list(t.chunk(n, dim=0)))


def squeeze_leading(n_dims: int) -> Transform:
    """HF keeps a leading (1, ...) batch dim on some parameters (ViT's cls token); ours drops it."""

    def to_ours(ts: list[Tensor]) -> Tensor:
        t = _one(ts)
        return t.reshape(t.shape[-n_dims:]) if t.dim() > n_dims else t

    return Transform(f"squeeze_leading_{n_dims}", to_ours, lambda t, n: [t.reshape(1, *t.shape)])


@dataclass(frozen=True)
class Rule:
    """One row of a key-map table: ours <- transform.to_ours(hf...), hf... <- transform.to_hf(ours)."""

    ours: str
    hf: str | tuple[str, ...]
    transform: Transform = IDENTITY
    hf_keys: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hf_keys", (self.hf,) if isinstance(self.hf, str) else tuple(self.hf))

    def with_prefixes(self, ours_prefix: str, hf_prefix: str) -> Rule:
        return Rule(ours_prefix + self.ours, tuple(hf_prefix + k for k in self.hf_keys), self.transform)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def expand_rules(rules: Iterable[Rule], counts: Mapping[str, int]) -> list[Rule]:
    """Replace every ``{name}`` by 0 .. counts[name] - 1 (one rule per combination)."""
    out: list[Rule] = []
    for rule in rules:
        names = sorted(_placeholders(rule.ours).union(*(_placeholders(k) for k in rule.hf_keys)))
        missing = [n for n in names if n not in counts]
        if missing:
            raise ValueError(f"key-map rule {rule.ours!r} uses placeholders {missing} with no layer count")
        for combo in itertools.product(*(range(counts[n]) for n in names)):
            values = dict(zip(names, combo))
            out.append(
                Rule(rule.ours.format(**values), tuple(k.format(**values) for k in rule.hf_keys), rule.transform)
            )
    return out
