"""Shared fixtures for the training tests: a tiny GPT and learnable token data.

Dimension key: B batch, T length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


@pytest.fixture
def tiny_gpt() -> Callable[..., nn.Module]:
    """``tiny_gpt(**overrides)`` -> a seeded gpt-tiny (V=128, 2 layers, D=32)."""
    from attnlab.models.config import from_name
    from attnlab.models.gpt import GPT

    def make(seed: int = 0, **overrides) -> nn.Module:
        torch.manual_seed(seed)
        return GPT(from_name("gpt-tiny", **overrides))

    return make


@pytest.fixture
def lm_items() -> list[dict[str, torch.Tensor]]:
    """48 sequences of 12 tokens where the next token is the current one + 1 (mod 128)."""
    g = torch.Generator().manual_seed(0)
    starts = torch.randint(0, 128, (48, 1), generator=g)
    return [{"ids": (s + torch.arange(12)) % 128} for s in starts]


@pytest.fixture
def quiet() -> dict:
    """Trainer keyword arguments that keep tests quiet and fast."""
    return {"progress": False, "tensorboard": False, "log_every": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU spinning threads cost a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
