"""Servers for the HTTP tests: tiny models behind uvicorn on 127.0.0.1, OS-chosen ports, stopped at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

CORPUS = ["the movie was great and fun", "the film was boring and bad", "a great story with fun actors",
          "bad acting and a boring plot", "the cat sat on the mat", "a dog runs in the park"] * 4


class SlowGPT:
    """Builds a GPT whose forward takes at least ``delay`` seconds and counts its calls."""

    @staticmethod
    def make(vocab_size: int, pad_id: int, bos_id: int, delay: float) -> Any:
        from attnlab.models import GPT, from_name

        class _Slow(GPT):
            calls = 0

            def forward(self, *args: Any, **kwargs: Any) -> Any:
                type(self).calls += 1
                time.sleep(delay)
                return super().forward(*args, **kwargs)

        torch.manual_seed(0)  # eos_id=None: every completion runs to max_tokens, so timings are predictable
        config = from_name("gpt-tiny", vocab_size=vocab_size, pad_id=pad_id, bos_id=bos_id, eos_id=None)
        return _Slow(config).eval()


@pytest.fixture(scope="module")
def gen_server() -> Iterator[Any]:
    """text-generation, max 2 requests in flight, about 25 ms per token."""
    import attnlab
    from attnlab.data import Tokenizer
    from attnlab.serve import BackgroundServer, ServeSettings, create_app

    tok = Tokenizer.train("bpe", texts=CORPUS, vocab_size=300, min_frequency=1)
    model = SlowGPT.make(tok.vocab_size, tok.pad_id, tok.bos_id, delay=0.025)
    pipe = attnlab.pipeline("text-generation", model=model, tokenizer=tok)
    app = create_app(pipe, ServeSettings(name="tiny-gpt", max_concurrency=2))
    with BackgroundServer(app) as server:
        server.pipe, server.model = pipe, model  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def cls_server() -> Iterator[Any]:
    """text-classification (tiny BERT with named labels)."""
    import attnlab
    from attnlab.data import Tokenizer
    from attnlab.models import from_name
    from attnlab.models.bert import BertForSequenceClassification
    from attnlab.serve import BackgroundServer, ServeSettings, create_app

    tok = Tokenizer.train("wordpiece", texts=CORPUS, vocab_size=120, min_frequency=1)
    torch.manual_seed(0)
    config = from_name("bert-tiny", vocab_size=tok.vocab_size, id2label={0: "negative", 1: "positive"})
    pipe = attnlab.pipeline("sentiment-analysis", model=BertForSequenceClassification(config), tokenizer=tok)
    with BackgroundServer(create_app(pipe, ServeSettings(name="tiny-bert", max_concurrency=2))) as server:
        server.pipe = pipe  # type: ignore[attr-defined]
        yield server

