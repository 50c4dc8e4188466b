"""Label-smoothed cross-entropy that ignores padding (Szegedy et al. 2016; Vaswani et al. 2017, 5.4).

Dimension key: N positions (any leading shape, flattened), V classes / vocabulary.

With smoothing eps the target distribution puts ``1 - eps`` on the label and ``eps / V`` on every
class (the label included), so per position

    loss = (1 - eps) * (-log p[label]) + eps * mean_v(-log p[v])

which is what ``torch.nn.functional.cross_entropy(label_smoothing=eps)`` computes. Positions whose
label is ``ignore_index`` contribute nothing and are not counted by ``reduction="mean"``. Everything
is computed in float32 whatever the logits' dtype.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100


def token_losses(
    logits: Tensor, target: Tensor, *, smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-position ``(loss, nll, valid)``, each (N,): smoothed loss, plain NLL, and the not-ignored mask.

    ``logits`` (..., V) and ``target`` (...) are flattened; ignored positions hold 0 in loss and nll.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must lie in [0, 1), got {smoothing}")
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be target {tuple(target.shape)} plus a class dim")
    logp = F.log_softmax(logits.reshape(-1, logits.shape[-1]).float(), dim=-1)  # (N, V)
    target = target.reshape(-1)  # (N,)
    valid = target != ignore_index  # (N,)
    nll = -logp.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)  # (N,)
    nll = nll.masked_fill(~valid, 0.0)
    if smoothing == 0.0:
        return nll, nll, valid
    uniform = (-logp.mean(dim=-1)).masked_fill(~valid, 0.0)  # (N,)
    return (1.0 - smoothing) * nll + smoothing * uniform, nll, valid


def label_smoothed_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    smoothing: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> Tensor:
    """Cross-entropy with label smoothing; same values as ``F.cross_entropy(..., label_smoothing=)``.

    logits (..., V), target (...) -> scalar (``"mean"`` over non-ignored positions, ``"sum"``) or (...)
    (``"none"``, zeros where ignored).
    """
    loss, _, valid = token_losses(logits, target, smoothing=smoothing, ignore_index=ignore_index)
    if reduction == "none":
        return loss.reshape(target.shape)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / valid.sum()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def accuracy_count(logits: Tensor, target: Tensor, *, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Number of non-ignored positions whose arg-max class is the label (a 0-dim long tensor)."""
    pred = logits.argmax(dim=-1)  # (...)
    return ((pred == target) & (target != ignore_index)).sum()


__all__ = ["IGNORE_INDEX", "accuracy_count", "label_smoothed_cross_entropy", "token_losses"]
