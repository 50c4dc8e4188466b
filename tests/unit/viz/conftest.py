"""Shared fixtures for the viz tests: a character tokenizer and tiny models that use it."""

from __future__ import annotations

import pytest
import torch

from attnlab.data.tokenizer import Tokenizer
from attnlab.models import GPT, Transformer, from_name

CORPUS = ["the cat sat on the mat, and the dog ran away. [x] Once upon a time!"]


@pytest.fixture(scope="session")
def char_tokenizer() -> Tokenizer:
    return Tokenizer.train("char", texts=CORPUS)


@pytest.fixture(scope="session")
def transformer_and_tokenizer(char_tokenizer) -> tuple[Transformer, Tokenizer]:
    tok = char_tokenizer
    torch.manual_seed(0)
    config = from_name("tiny", vocab_size=tok.vocab_size, pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id)
    return Transformer(config).eval(), tok


@pytest.fixture(scope="session")
def gpt_dir(char_tokenizer, tmp_path_factory):
    """A saved tiny GPT (config.json + model.safetensors) with its tokenizer.json."""
    tok = char_tokenizer
    torch.manual_seed(0)
    model = GPT(from_name("gpt-tiny", vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id))
    path = tmp_path_factory.mktemp("gpt")
    model.save_pretrained(path)
    tok.save(path)
    return path
