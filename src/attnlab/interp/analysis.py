"""Head-role analysis of a whole model on prepared inputs, plus attention rollout.

Dimension key: L layers, B batch, H heads, T query length, S key length, N probe length.

    prepared = prepare_inputs(model, tokenizer, "The cat sat on the mat.")
    results = analyze_heads(model, prepared)          # one HeadScores per attention group
    print(ranking_table(results))

Decoders are also run on a *probe*: BOS followed by N random tokens repeated twice, the standard
input on which duplicate-token and induction heads show themselves (Olsson et al. 2022): in the
second copy, token i's earlier occurrence and its successor are known exactly. The probe's
duplicate and induction scores replace those measured on the text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from attnlab.interp.capture import Capture, run_with_capture
from attnlab.interp.heads import HeadScores, score_heads
from attnlab.interp.inputs import PreparedInputs, special_token_ids
from attnlab.interp.sites import LayerSelection

PROBE_ROLES = ("duplicate", "induction")


def scores_from_capture(
    capture: Capture, prepared: PreparedInputs, roles: Sequence[str] | None = None
) -> list[HeadScores]:
    """Score every captured group; the capture must hold the "pattern" and "allowed" points."""
    for point in ("pattern", "allowed"):
        if point not in capture.points:
            raise ValueError(f"head analysis needs the {point!r} capture point; capture points=('pattern', 'allowed')")
    sides = prepared.group_sides(capture.sites)
    results = []
    for group in capture.groups:
        q_side, k_side = (prepared.sides[name] for name in sides[group])
        first = capture.group_sites(group)[0]
        results.append(score_heads(
            capture.stack("pattern", group), allowed=capture.stack("allowed", group), group=group,
            layers=capture.layers(group), heads=capture.heads[first.name], self_attention=first.kind == "self",
            query_ids=q_side.ids, key_ids=k_side.ids, key_delimiter=k_side.delimiter, key_rarity=k_side.rarity,
            roles=roles,
        ))
    return results


def induction_probe(vocab_size: int, length: int, *, exclude: set[int] = frozenset(), bos_id: int | None = None,
                    seed: int = 0) -> Tensor:
    """(1, [1 +] 2N) ids: [BOS] then N random ordinary tokens, repeated once."""
    allowed = torch.tensor([i for i in range(vocab_size) if i not in exclude])
    if allowed.numel() < 2:
        raise ValueError(f"the vocabulary ({vocab_size} ids, {len(exclude)} special) is too small for a probe")
    gen = torch.Generator().manual_seed(seed)
    half = allowed[torch.randint(allowed.numel(), (length,), generator=gen)]  # (N,)
    ids = torch.cat([half, half])  # (2N,)
    if bos_id is not None:
        ids = torch.cat([torch.tensor([bos_id]), ids])
    return ids[None]


def _probe_scores(model: nn.Module, layers: LayerSelection, length: int, seed: int) -> list[HeadScores]:
    config = getattr(model, "config", None)
    vocab = int(config.vocab_size)
    max_len = getattr(config, "max_len", None)
    bos = getattr(config, "bos_id", None)
    if isinstance(max_len, int):
        length = min(length, (max_len - (bos is not None)) // 2)
    if length < 2:
        return []
    ids = induction_probe(vocab, length, exclude=special_token_ids(None, config), bos_id=bos, seed=seed)
    device = next(model.parameters()).device
    _, capture = run_with_capture(model, ids.to(device), layers=layers, points=("pattern", "allowed"))
    results = []
    for group in capture.groups:
        first = capture.group_sites(group)[0]
        results.append(score_heads(
            capture.stack("pattern", group), allowed=capture.stack("allowed", group), group=group,
            layers=capture.layers(group), heads=capture.heads[first.name], query_ids=ids.to(device),
            key_ids=ids.to(device), roles=PROBE_ROLES,
        ))
    return results


def analyze_heads(
    model: nn.Module,
    prepared: PreparedInputs,
    *,
    layers: LayerSelection = None,
    probe_len: int = 32,
    seed: int = 0,
) -> list[HeadScores]:
    """Role scores of every head of every attention group (see :mod:`attnlab.interp.heads`).

    For decoders with ``probe_len > 0`` the duplicate and induction scores come from the repeated
    random-token probe (see the module docstring) instead of the text.
    """
    was_training = model.training
    model.eval()
    try:
        points = ("pattern", "allowed")
        _, capture = run_with_capture(model, *prepared.args, layers=layers, points=points, **prepared.kwargs)
        results = scores_from_capture(capture, prepared)
        if prepared.kind == "decoder" and probe_len > 0:
            probe = {r.group: r for r in _probe_scores(model, layers, probe_len, seed)}
            for r in results:
                if r.group in probe:
                    r.scores.update(probe[r.group].scores)
    finally:
        model.train(was_training)
    return results


def attention_rollout(patterns: Tensor, *, residual: bool = True, head_fusion: str = "mean") -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): (L, B, H, T, T) -> (B, T, T) flow to the input.

    Each layer's head-fused attention A (mean, max or min over heads), mixed with the identity for
    the residual connection as 0.5 A + 0.5 I and renormalized, is multiplied through the layers.
    """
    if patterns.dim() != 5 or patterns.shape[-1] != patterns.shape[-2]:
        raise ValueError(f"rollout needs self-attention patterns (L, B, H, T, T), got {tuple(patterns.shape)}")
    fuse = {"mean": lambda p: p.mean(1), "max": lambda p: p.amax(1), "min": lambda p: p.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    T = patterns.shape[-1]
    eye = torch.eye(T, device=patterns.device, dtype=torch.float32)
    flow = eye.expand(patterns.shape[1], T, T)  # (B, T, T)
    for layer in patterns.float():
        a = fuse[head_fusion](layer)  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True).clamp(min=1e-12)
        flow = a @ flow  # (B, T, T)
    return flow
