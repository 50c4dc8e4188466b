"""Tiny models and a toy tokenizer for the generation unit tests."""

import pytest
import torch

from attnlab.models import GPT, Transformer, from_name

VOCAB = 32  # small enough that eos (id 2) is actually produced now and then


class CharTokenizer:
    """Duck-typed tokenizer: id i <-> the i-th character of ALPHABET."""

    ALPHABET = "abcdefghijklmnopqrstuvwxyz .,!?\n"

    def encode(self, text: str) -> list[int]:
        return [self.ALPHABET.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.ALPHABET[i] for i in ids)


def spread(model: torch.nn.Module, k: float = 1.0, seed: int = 0) -> torch.nn.Module:
    """Re-draw the weights (matrices std k/sqrt(fan_in), biases std 0.1, norms untouched) so that
    tiny random models produce varied tokens instead of repeating one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * k / p.shape[-1] ** 0.5)
            elif "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def tiny_gpt(positional: str = "learned", **overrides) -> GPT:
    cfg = from_name(
        "gpt-tiny", vocab_size=VOCAB, positional=positional, bos_id=1, eos_id=2, pad_id=0,
        tie_embeddings=False, **overrides,
    )
    return spread(GPT(cfg), 2.0)


def tiny_transformer(positional: str = "sinusoidal", **overrides) -> Transformer:
    cfg = from_name(
        "tiny", vocab_size=VOCAB, positional=positional, pad_id=0, bos_id=1, eos_id=2, norm_first=True,
        tie_embeddings=False, **overrides,
    )
    return spread(Transformer(cfg), 1.0)


@pytest.fixture
def gpt() -> GPT:
    return tiny_gpt()


@pytest.fixture
def make_gpt():
    """tiny_gpt as a fixture (test modules cannot import from conftest reliably)."""
    return tiny_gpt


@pytest.fixture
def make_transformer():
    return tiny_transformer


@pytest.fixture(name="spread")
def spread_fixture():
    return spread


@pytest.fixture
def transformer() -> Transformer:
    return tiny_transformer()


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer()
