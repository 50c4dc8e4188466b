"""Head roles from the literature, scored from attention patterns, for any attention group.

Dimension key: L layers, B batch, H heads, T query length, S key length.

Each token or position role is a *target set* of keys per query, a bool (B, T, S) tensor, and a
head's score is its attention mass on the target beyond chance, averaged over the query rows where
the role is defined (the target is neither empty nor every key the query can see):

    row score = (mass on target - chance) / (1 - chance),   chance = |target| / |keys allowed|

A head that always attends to its target scores 1, a uniform head exactly 0, and a head that avoids
the target goes below 0. The roles:

    previous    key i-1, the positional heads of Voita et al. (2019) and Clark et al. (2019)
    next        key i+1 (bidirectional self-attention only)
    delimiter   [CLS]/[SEP]/BOS/EOS and punctuation keys (Clark et al. 2019; Kovaleva et al. 2019)
    rare        the rarest key token the query can see (Voita et al. 2019's rare-word heads)
    duplicate   other keys holding the query's own token (Wang et al. 2022)
    induction   keys right after an earlier occurrence of the query's token (Olsson et al. 2022);
                causal self-attention only
    entropy     mean row entropy / log(#keys allowed): 0 focused on one key, 1 uniform (broad vs
                focused heads, Clark et al. 2019); ranked as "broad" (= entropy) and "focused"
                (= 1 - entropy)

Positional roles apply to self-attention; token roles need token ids (no ids: no score). Whether a
self-attention group is causal is read from its ``allowed`` mask, so no family knowledge is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

ROLES = ("previous", "next", "delimiter", "rare", "duplicate", "induction", "entropy")
RANKINGS = ("previous", "next", "delimiter", "rare", "duplicate", "induction", "broad", "focused")


def _as_allowed(allowed: Tensor | None, L: int, B: int, T: int, S: int, device: torch.device) -> Tensor:
    """(L, B, H|1, T, S) bool from None, (B, T, S), (B, H|1, T, S) or (L, B, H|1, T, S)."""
    if allowed is None:
        return torch.ones(1, 1, 1, T, S, dtype=torch.bool, device=device).expand(L, B, 1, T, S)
    if allowed.dtype != torch.bool:
        raise ValueError(f"allowed must be a bool tensor (True = the query may see the key), got {allowed.dtype}")
    if allowed.dim() == 3:
        allowed = allowed[:, None]  # (B, 1, T, S)
    if allowed.dim() == 4:
        allowed = allowed[None].expand(L, *allowed.shape)  # (L, B, H|1, T, S)
    if allowed.dim() != 5 or allowed.shape[-2:] != (T, S):
        raise ValueError(f"allowed of shape {tuple(allowed.shape)} does not fit patterns with T={T}, S={S}")
    return allowed


def target_scores(patterns: Tensor, target: Tensor, allowed: Tensor | None = None) -> Tensor:
    """(L, H) chance-corrected attention mass on ``target`` (B, T, S); NaN where no row qualifies.

    patterns: (L, B, H, T, S) probabilities. allowed: keys each query could see (see module doc).
    """
    L, B, H, T, S = patterns.shape
    allowed = _as_allowed(allowed, L, B, T, S, patterns.device)
    out = torch.full((L, H), math.nan, dtype=torch.float32, device=patterns.device)
    for layer in range(L):
        a = allowed[layer]  # (B, H|1, T, S)
        tgt = target[:, None] & a  # (B, H|1, T, S)
        n_allowed, n_tgt = a.sum(-1).float(), tgt.sum(-1).float()  # (B, H|1, T)
        ok = (n_tgt > 0) & (n_tgt < n_allowed)
        chance = n_tgt / n_allowed.clamp(min=1)
        mass = (patterns[layer].float() * tgt).sum(-1)  # (B, H, T)
        rows = (mass - chance) / (1 - chance).clamp(min=1e-12)
        ok = ok.expand_as(rows)
        count = ok.sum(dim=(0, 2))  # (H,)
        total = torch.where(ok, rows, torch.zeros_like(rows)).sum(dim=(0, 2))
        out[layer] = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))
    return out


def entropy_scores(patterns: Tensor, allowed: Tensor | None = None) -> Tensor:
    """(L, H) mean normalized row entropy in [0, 1] over rows that see at least two keys."""
    L, B, H, T, S = patterns.shape
    allowed = _as_allowed(allowed, L, B, T, S, patterns.device)
    out = torch.full((L, H), math.nan, dtype=torch.float32, device=patterns.device)
    for layer in range(L):
        p = patterns[layer].float()  # (B, H, T, S)
        n = allowed[layer].sum(-1).float().expand(B, H, T)  # (B, H, T)
        ent = -(p * torch.log(p.clamp(min=1e-30))).sum(-1)  # (B, H, T)
        ok = (n >= 2) & (p.sum(-1) > 0.5)
        rows = torch.where(ok, ent / torch.log(n.clamp(min=2)), torch.zeros_like(ent))
        count = ok.sum(dim=(0, 2))
        mean = rows.sum(dim=(0, 2)) / count.clamp(min=1)
        out[layer] = torch.where(count > 0, mean, torch.full_like(mean, math.nan))
    return out


def is_causal_pattern(allowed: Tensor) -> bool:
    """True when no query may see a later key (allowed (..., T, S) with T == S)."""
    return allowed.shape[-1] == allowed.shape[-2] and not bool(allowed.triu(1).any())


def _offset_target(T: int, S: int, shift: int, q_pos: Tensor) -> Tensor:
    k_pos = torch.arange(S, device=q_pos.device)
    return (k_pos[None, :] == q_pos[:, None] + shift)[None]  # (1, T, S)


def role_targets(
    T: int,
    S: int,
    *,
    self_attention: bool,
    causal: bool,
    base_allowed: Tensor,
    query_ids: Tensor | None = None,
    key_ids: Tensor | None = None,
    key_delimiter: Tensor | None = None,
    key_rarity: Tensor | None = None,
    query_positions: Tensor | None = None,
) -> dict[str, Tensor]:
    """{role: (B|1, T, S) bool target} for the roles that apply to this group.

    base_allowed: (B, T, S) keys visible to each query (for "rare": the rarest *visible* key).
    query_ids (B, T), key_ids (B, S): token ids; key_delimiter (B, S) bool; key_rarity (B, S) float
    (higher = rarer; -inf = never a rare-word target). query_positions (T,) default: right-aligned
    with the keys, S - T + arange(T).
    """
    device = base_allowed.device
    q_pos = torch.arange(T, device=device) + (S - T) if query_positions is None else query_positions.to(device)
    targets: dict[str, Tensor] = {}
    if self_attention:
        targets["previous"] = _offset_target(T, S, -1, q_pos)
        if not causal:
            targets["next"] = _offset_target(T, S, +1, q_pos)
    if key_delimiter is not None:
        targets["delimiter"] = key_delimiter.bool()[:, None, :].expand(-1, T, S)
    if key_rarity is not None:
        rarity = key_rarity.float()[:, None, :].masked_fill(~base_allowed, -math.inf)  # (B, T, S)
        top = rarity.amax(-1, keepdim=True)
        targets["rare"] = (rarity == top) & torch.isfinite(top)
    if self_attention and query_ids is not None and key_ids is not None:
        same = query_ids[:, :, None] == key_ids[:, None, :]  # (B, T, S)
        targets["duplicate"] = same & (q_pos[:, None] != torch.arange(S, device=device)[None, :])
        if causal:
            prev_tok = torch.cat([torch.full_like(key_ids[:, :1], -1), key_ids[:, :-1]], dim=1)  # (B, S)
            k_pos = torch.arange(S, device=device)
            before = (k_pos[None, :] >= 1) & (k_pos[None, :] <= q_pos[:, None])  # (T, S)
            targets["induction"] = (query_ids[:, :, None] == prev_tok[:, None, :]) & before
    return targets


@dataclass
class HeadScores:
    """Role scores of one attention group: ``scores[role]`` is (L, H), NaN where undefined."""

    group: str
    layers: list[int]
    heads: list[int]
    scores: dict[str, Tensor] = field(default_factory=dict)

    def grid(self, name: str) -> Tensor | None:
        """(L, H) scores of a role, "broad" (= entropy) or "focused" (= 1 - entropy); None if unscored."""
        if name in ("broad", "focused"):
            ent = self.scores.get("entropy")
            return None if ent is None else (ent if name == "broad" else 1.0 - ent)
        return self.scores.get(name)

    def ranked(self, name: str, top: int | None = None) -> list[tuple[int, int, float]]:
        """(layer, head, score) best first; ``name`` is a role, "broad" or "focused"."""
        grid = self.grid(name)
        if grid is None:
            return []
        rows = [
            (self.layers[i], self.heads[j], float(grid[i, j]))
            for i in range(grid.shape[0]) for j in range(grid.shape[1]) if not math.isnan(float(grid[i, j]))
        ]
        rows.sort(key=lambda r: -r[2])
        return rows[:top] if top is not None else rows


def score_heads(
    patterns: Tensor,
    *,
    group: str = "self",
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    allowed: Tensor | None = None,
    self_attention: bool = True,
    query_ids: Tensor | None = None,
    key_ids: Tensor | None = None,
    key_delimiter: Tensor | None = None,
    key_rarity: Tensor | None = None,
    query_positions: Tensor | None = None,
    roles: Sequence[str] | None = None,
) -> HeadScores:
    """Score every head of one group for the roles of the module docstring.

    patterns: (L, B, H, T, S) (e.g. ``Capture.stack("pattern", group)``); allowed: (B, T, S),
    (B, H|1, T, S) or (L, B, H|1, T, S) (``Capture.stack("allowed", group)``), default all keys.
    """
    if patterns.dim() != 5:
        raise ValueError(f"patterns must be (L, B, H, T, S), got shape {tuple(patterns.shape)}")
    unknown = sorted(set(roles or ()) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown head roles {unknown}; choose from {ROLES}")
    L, B, H, T, S = patterns.shape
    full = _as_allowed(allowed, L, B, T, S, patterns.device)
    base = full[0].any(1)  # (B, T, S)
    causal = self_attention and is_causal_pattern(base)
    targets = role_targets(
        T, S, self_attention=self_attention, causal=causal, base_allowed=base, query_ids=query_ids,
        key_ids=key_ids, key_delimiter=key_delimiter, key_rarity=key_rarity, query_positions=query_positions,
    )
    wanted = set(roles or ROLES)
    result = HeadScores(
        group, list(layers if layers is not None else range(L)), list(heads if heads is not None else range(H))
    )
    for role, target in targets.items():
        if role in wanted:
            result.scores[role] = target_scores(patterns, target, full)
    if "entropy" in wanted:
        result.scores["entropy"] = entropy_scores(patterns, full)
    return result


def ranking_table(results: Sequence[HeadScores], top: int = 5, names: Sequence[str] = RANKINGS) -> str:
    """A plain-text table: for each role, the ``top`` heads over all groups, best first."""
    lines = [f"{'role':<10} {'rank':>4}  {'group':<16} {'layer':>5} {'head':>4}  {'score':>7}"]
    lines.append("-" * len(lines[0]))
    for name in names:
        rows = [(g.group, *r) for g in results for r in g.ranked(name)]
        if not rows:
            continue
        rows.sort(key=lambda r: -r[3])
        for rank, (grp, layer, head, score) in enumerate(rows[:top], start=1):
            lines.append(f"{name if rank == 1 else '':<10} {rank:>4}  {grp:<16} {layer:>5} {head:>4}  {score:>7.3f}")
    return "\n".join(lines)
