"""Shared fixtures for the classic (RNN attention) tests: tiny configs of every variant, padded batches."""

from __future__ import annotations

import pytest
import torch

from attnlab.classic import RNNSeq2Seq, RNNSeq2SeqConfig

TINY = {"vocab_size": 40, "d_embed": 12, "d_hidden": 16, "max_len": 32, "dropout": 0.0, "window": 2}

# name -> config overrides; covers both cells, uni/bidirectional encoders, every score and alignment
VARIANTS: dict[str, dict] = {
    "noattn-gru": {"attention": "none"},
    "noattn-lstm": {"attention": "none", "cell": "lstm", "n_layers": 2},
    "bahdanau-gru": {"attention": "bahdanau"},
    "bahdanau-lstm": {"attention": "bahdanau", "cell": "lstm", "bidirectional": False},
    "luong-dot": {"attention": "luong", "score": "dot"},
    "luong-general": {"attention": "luong", "score": "general", "cell": "lstm", "n_layers": 2},
    "luong-concat": {"attention": "luong", "score": "concat", "input_feeding": False},
    "luong-general-nofeed": {"attention": "luong", "score": "general", "input_feeding": False},
    "luong-local-p": {"attention": "luong", "score": "general", "alignment": "local-p"},
    "luong-local-p-dot-nofeed": {"attention": "luong", "score": "dot", "alignment": "local-p", "input_feeding": False},
}
ATTENTION_VARIANTS = [name for name, kw in VARIANTS.items() if kw["attention"] != "none"]


def tiny_config(name: str, **overrides) -> RNNSeq2SeqConfig:
    return RNNSeq2SeqConfig(**{**TINY, **VARIANTS[name], **overrides})


def tiny_model(name: str, seed: int = 0, **overrides) -> RNNSeq2Seq:
    torch.manual_seed(seed)
    return RNNSeq2Seq(tiny_config(name, **overrides)).eval()


def padded_batch(lengths: list[int], vocab: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random ids (B, S) with pad 0, and the (B, S) valid mask."""
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    ids = torch.randint(3, vocab, (len(lengths), S), generator=g)
    valid = torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~valid, 0), valid


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    return request.param


@pytest.fixture(params=ATTENTION_VARIANTS)
def attn_variant(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny RNN steps are dominated by per-op overhead; extra threads only contend on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
