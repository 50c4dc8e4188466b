"""Shared fixtures for the interp tests: tiny models of every family and a naive-weights reference."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from attnlab.layers.attention import MultiHeadAttention
from attnlab.models import GPT, Transformer, from_name


@contextmanager
def _naive_weights(model: nn.Module) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Make every MultiHeadAttention also run its own attention call with need_weights=True (the
    "naive" backend) and record the weights by module name: the reference for captured patterns."""
    recorded: dict[str, list[torch.Tensor]] = {}
    patched = []
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention):
            original = module.forward

            def forward(*args, _orig=original, _name=name, **kwargs):
                out, w = _orig(*args, **{**kwargs, "need_weights": True})
                recorded.setdefault(_name, []).append(w.detach())
                return out, w

            module.forward = forward
            patched.append(module)
    try:
        yield recorded
    finally:
        for module in patched:
            del module.forward


@pytest.fixture
def naive_weights():
    """The reference context manager: ``with naive_weights(model) as ref: model(...)``."""
    return _naive_weights


@pytest.fixture
def transformer() -> Transformer:
    torch.manual_seed(0)
    return Transformer(from_name("tiny", dropout=0.0)).eval()


def _make_gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(from_name("gpt-tiny", **overrides)).eval()


@pytest.fixture
def make_gpt():
    """``make_gpt(**config overrides)`` -> a seeded tiny GPT in eval mode."""
    return _make_gpt


@pytest.fixture
def gpt() -> GPT:
    return _make_gpt()


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(3, 120, (2, 9), generator=torch.Generator().manual_seed(1))


