"""AdamW with weight-decay groups: no decay on norms, biases and embeddings.

Dimension key: none (parameters of any shape).

A parameter is exempt from weight decay when it has fewer than 2 dimensions (biases, norm gains) or
belongs to a normalization or embedding module (class name containing "Norm" or "Embedding", or one
of torch's norm/embedding classes). A weight shared by an embedding and a linear layer (tied input
and output embeddings) is therefore not decayed. Each parameter appears in exactly one group.
"""

from __future__ import annotations

import torch
from torch import nn

_EXEMPT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Embedding, nn.EmbeddingBag, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase,
)


def _exempt_module(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, _EXEMPT_TYPES) or "Norm" in name or "Embedding" in name


def split_decay_names(model: nn.Module) -> tuple[list[str], list[str]]:
    """``(decay, no_decay)`` parameter names (first name of each distinct trainable parameter)."""
    exempt: set[int] = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.ndim < 2 or _exempt_module(module):
                exempt.add(id(p))
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # tied parameters are listed once
        if p.requires_grad:
            (no_decay if id(p) in exempt else decay).append(name)
    return decay, no_decay


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: ``weight_decay`` on matrices of compute layers, 0 elsewhere (empty ones dropped)."""
    decay, no_decay = split_decay_names(model)
    params = dict(model.named_parameters())
    groups = [
        {"params": [params[n] for n in decay], "weight_decay": weight_decay},
        {"params": [params[n] for n in no_decay], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_adamw(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`. ``fused=None``: the fused kernel when every parameter is on CUDA."""
    groups = param_groups(model, weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    if fused is None:
        fused = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused or None)
