"""Small pieces every family shares.

Dimension key: B batch, T length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def shift_right(labels: Tensor, start_id: int, pad_id: int, ignore_id: int = -100) -> Tensor:
    """Decoder input for teacher forcing: (B, T) labels -> (B, T) [start, labels[:, :-1]].

    Positions holding ``ignore_id`` in the labels (loss padding) become ``pad_id``.
    """
    out = labels.new_full(labels.shape, pad_id)
    out[:, 1:] = labels[:, :-1]
    out[:, 0] = start_id
    return out.masked_fill(out == ignore_id, pad_id)


def normalize_labels(
    num_labels: int, id2label: dict | None, label2id: dict | None
) -> tuple[int, dict[int, str], dict[str, int]]:
    """Classification label maps as HF configs hold them: (num_labels, id2label, label2id).

    JSON turns the int keys of ``id2label`` into strings; they are turned back. Missing maps are
    filled with HF's ``LABEL_i`` names; a ``label2id`` that does not invert ``id2label`` is refused.
    """
    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
        num_labels = len(id2label)
    else:
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    inverse = {v: k for k, v in id2label.items()}
    label2id = inverse if label2id is None else {str(k): int(v) for k, v in label2id.items()}
    if label2id != inverse:
        raise ValueError(f"label2id {label2id} does not invert id2label {id2label}")
    return num_labels, id2label, label2id


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Distinct parameters (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


@torch.no_grad()
def init_normal_(module: nn.Module, std: float = 0.02) -> None:
    """GPT/BERT-style init: normal(0, std) weights, zero biases, unit norms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
