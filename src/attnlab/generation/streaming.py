"""Streaming: iterate over the text while it is generated.

Dimension key: t new tokens so far.

    for event in TextStreamer(model, tokenizer, "Once upon a time", max_new_tokens=40):
        print(event.delta, end="", flush=True)

Each :class:`StreamEvent` carries the whole continuation so far (``text``) and what was appended
since the previous event (``delta``). Greedy search and sampling only ever append. Beam search
streams its current best beam, which can switch to a hypothesis whose text does not extend the
previous one: then ``rewritten`` is True and ``delta`` is the whole new text. The last event
(``done``) holds the final answer (for beam search, the best finished hypothesis).

Text that ends in an incomplete character (U+FFFD from a partial UTF-8 byte sequence, as byte-level
BPE produces mid-character) is held back until the character completes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.generation.api import GenerationOutput, GenerationSession
from attnlab.generation.config import GenerationConfig
from attnlab.generation.prompts import Prompt
from attnlab.generation.stopping import decode_ids


@dataclasses.dataclass
class StreamEvent:
    text: str  # the continuation so far (current best beam for beam search)
    delta: str  # appended since the previous event (the whole text when rewritten)
    token_ids: list[int]  # the new token ids behind ``text``
    rewritten: bool = False  # beam search switched to a beam whose text does not extend the previous one
    done: bool = False

    def __str__(self) -> str:
        return self.delta


class TextStreamer:
    """An iterator of :class:`StreamEvent` for one prompt; ``output`` holds the final result."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        prompt: Prompt,
        *,
        config: GenerationConfig | None = None,
        attention_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> None:
        if not callable(getattr(tokenizer, "decode", None)):
            raise TypeError("TextStreamer needs a tokenizer with decode(ids) -> str")
        config = config or GenerationConfig()
        self.config = config.replace(**options) if options else config
        if self.config.num_beams == 1 and self.config.num_return_sequences > 1:
            raise ValueError("TextStreamer streams one sequence; set num_return_sequences=1")
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt
        self.attention_mask, self.generator = attention_mask, generator
        self.output: GenerationOutput | None = None
        self.text = ""

    def __iter__(self) -> Iterator[StreamEvent]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield from self._events()
        finally:
            self.model.train(was_training)

    def _session(self) -> GenerationSession:
        session = GenerationSession(
            self.model, self.prompt, self.config, attention_mask=self.attention_mask,
            tokenizer=self.tokenizer, generator=self.generator,
        )
        if session.prompt_ids.shape[0] != 1:
            raise ValueError(f"TextStreamer streams one prompt, got a batch of {session.prompt_ids.shape[0]}")
        return session

    def _events(self) -> Iterator[StreamEvent]:
        session = self._session()
        eos = set(session.eos_ids)
        for tokens in session.steps():
            ids = self._row_ids(session, tokens[0], eos)
            event = self._event(ids, done=False)
            if event is not None:
                yield event
        self.output = session.output()
        n = int(self.output.lengths[0])
        final = self._event(self._strip_eos(self.output.new_tokens[0, :n].tolist(), eos), done=True)
        yield final if final is not None else StreamEvent(self.text, "", [], done=True)

    def _row_ids(self, session: GenerationSession, row: Tensor, eos: set[int]) -> list[int]:
        if session.stop is not None:  # greedy / sampling: the row's real tokens
            row = row[: int(session.stop.lengths[0])]
        return self._strip_eos(row.tolist(), eos)

    @staticmethod
    def _strip_eos(ids: list[int], eos: set[int]) -> list[int]:
        return ids[:-1] if ids and ids[-1] in eos else ids

    def _event(self, ids: list[int], *, done: bool) -> StreamEvent | None:
        text = decode_ids(self.tokenizer, ids)
        if not done and (text.endswith("\ufffd") or text == self.text):
            return None
        rewritten = not text.startswith(self.text)
        delta = text if rewritten else text[len(self.text) :]
        self.text = text
        return StreamEvent(text, delta, ids, rewritten=rewritten, done=done)
