"""What the generating pipelines share: options, batched completion, streaming, cancellation.

Dimension key: B prompts in a batch, R sequences returned per prompt, P prompt length, N new tokens.

Decoding is :mod:`attnlab.generation`'s: a :class:`~attnlab.generation.GenerationSession` per batch,
driven one step at a time, so that

- ``complete`` checks a cancellation flag (a ``threading.Event``) after every token and stops with
  :class:`GenerationCancelled` when it is set (the HTTP server sets it when a client disconnects);
- ``stream`` yields :class:`TextChunk` deltas for every row of the batch while they are produced.

Each returned sequence carries a finish reason, as OpenAI's API names them: ``"stop"`` (an eos
token or a stop string ended it) or ``"length"`` (``max_new_tokens`` was reached).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.generation import GenerationConfig, GenerationSession, make_generator
from attnlab.pipelines.base import Pipeline

# generation_config.json (HF names) -> GenerationConfig fields
HF_GENERATION_FIELDS = {
    "max_new_tokens": "max_new_tokens", "min_new_tokens": "min_new_tokens", "do_sample": "do_sample",
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size", "num_beams": "num_beams", "length_penalty": "length_penalty",
    "early_stopping": "early_stopping", "eos_token_id": "eos_id", "pad_token_id": "pad_id",
    "bos_token_id": "bos_id", "decoder_start_token_id": "decoder_start_id",
}


class GenerationCancelled(RuntimeError):
    """Raised by ``complete`` / ``stream`` when their ``cancel`` event is set mid-decode."""


@dataclasses.dataclass
class Completion:
    """One generated sequence."""

    text: str  # the new text (a final eos dropped)
    token_ids: list[int]  # the new token ids (a final eos dropped)
    finish_reason: str  # "stop" (eos or stop string) or "length" (max_new_tokens reached)
    prompt_ids: list[int]  # the prompt's token ids as the model saw them


@dataclasses.dataclass
class TextChunk:
    """A streaming update for sequence ``index`` (prompt-major: prompt i, sequence r -> i * R + r)."""

    index: int
    delta: str  # new text since this sequence's previous chunk (the whole text when ``rewritten``)
    text: str  # the sequence's text so far
    done: bool = False
    finish_reason: str | None = None  # set on the final chunk of each sequence
    rewritten: bool = False  # beam search switched to a beam whose text does not extend the previous one


def generation_defaults(folder: str | Path | None) -> dict[str, Any]:
    """GenerationConfig fields stored in a folder's ``generation_config.json`` (HF names), if any."""
    path = None if folder is None else Path(folder) / "generation_config.json"
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {ours: data[hf] for hf, ours in HF_GENERATION_FIELDS.items() if data.get(hf) is not None}
    return {k: v for k, v in out.items() if not (k.endswith("_id") and isinstance(v, list) and not v)}


class GenerativePipeline(Pipeline):
    """Base of text-generation and text2text/translation: see the module docstring."""

    def __init__(self, model: nn.Module, tokenizer: Any = None, *, generation_config: GenerationConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        defaults = generation_defaults(self.model_dir)
        self.generation_config = generation_config or GenerationConfig().replace(**defaults)

    # ---- hooks for the two shapes of model ---------------------------------------------------

    def encode_prompts(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def _new_text(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        return self._require_tokenizer().decode(new_ids)

    # ---- options -----------------------------------------------------------------------------

    def generation_options(self, config: GenerationConfig | None = None, **options: Any) -> GenerationConfig:
        """The pipeline's defaults, then ``config``, then keyword ``options`` (validated)."""
        if "max_length" in options:
            raise TypeError("max_length is not supported; use max_new_tokens (the number of tokens to add)")
        base = config or self.generation_config
        return base.replace(**options) if options else base

    # ---- decoding ----------------------------------------------------------------------------

    def _session(
        self, rows: list[list[int]], config: GenerationConfig, generator: torch.Generator | None
    ) -> GenerationSession:
        with torch.no_grad():
            return GenerationSession(self.model, rows, config, tokenizer=self.tokenizer, generator=generator)

    def complete(
        self, texts: Sequence[str], config: GenerationConfig | None = None, *, cancel: threading.Event | None = None,
        generator: torch.Generator | None = None, **options: Any,
    ) -> list[list[Completion]]:
        """R completions per text (R = ``num_return_sequences``), decoded together as one batch."""
        cfg = self.generation_options(config, **options)
        rows = self.encode_prompts(texts)
        generator = generator if generator is not None else make_generator(cfg.seed, self.device)
        session = self._session(rows, cfg, generator)
        for _ in session.steps():
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("generation cancelled")
        out = session.output()
        R = cfg.num_return_sequences
        completions = [
            self._completion(rows[r // R], out.new_tokens[r], int(out.lengths[r]), session, cfg)
            for r in range(out.new_tokens.shape[0])
        ]
        return [completions[i * R : (i + 1) * R] for i in range(len(rows))]

    def _completion(self, prompt: list[int], row: Tensor, n: int, session: GenerationSession,
                    cfg: GenerationConfig) -> Completion:
        ids = row[:n].tolist()
        ended_by_eos = bool(ids) and ids[-1] in session.eos_ids
        new = ids[:-1] if ended_by_eos else ids
        text = self._new_text(prompt, new)
        stopped = ended_by_eos or n < cfg.max_new_tokens or any(s in text for s in cfg.stop_strings)
        return Completion(text, new, "stop" if stopped else "length", list(prompt))

    def stream(
        self, inputs: str | Sequence[str], config: GenerationConfig | None = None, *,
        cancel: threading.Event | None = None, generator: torch.Generator | None = None, **options: Any,
    ) -> Iterator[TextChunk]:
        """Yield :class:`TextChunk` updates while generating; the last chunk of each sequence has ``done``.

        Greedy search and sampling stream every returned sequence of every prompt; beam search
        streams its current best beam (one sequence per prompt: ``num_return_sequences=1``).
        """
        cfg = self.generation_options(config, **options)
        if cfg.num_beams > 1 and cfg.num_return_sequences > 1:
            raise ValueError("streaming beam search returns one sequence per prompt; set num_return_sequences=1")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        rows = self.encode_prompts(texts)
        generator = generator if generator is not None else make_generator(cfg.seed, self.device)
        session = self._session(rows, cfg, generator)
        per_prompt = cfg.num_return_sequences
        shown: dict[int, str] = {}
        for tokens in session.steps():
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("generation cancelled")
            for r in range(tokens.shape[0]):
                chunk = self._partial(r, rows[r // per_prompt], tokens[r], session, shown)
                if chunk is not None:
                    yield chunk
        out = session.output()
        for r in range(out.new_tokens.shape[0]):
            final = self._completion(rows[r // per_prompt], out.new_tokens[r], int(out.lengths[r]), session, cfg)
            yield self._chunk(r, final.text, shown, done=True, finish_reason=final.finish_reason)

    def _partial(self, r: int, prompt: list[int], row: Tensor, session: GenerationSession,
                 shown: dict[int, str]) -> TextChunk | None:
        ids = row.tolist()
        if session.stop is not None:  # greedy / sampling: the row's real tokens only
            ids = ids[: int(session.stop.lengths[r])]
        eos = set(session.eos_ids)
        cut = next((i for i, t in enumerate(ids) if t in eos), len(ids))
        text = self._new_text(prompt, ids[:cut])
        if text.endswith("\ufffd") or text == shown.get(r, ""):  # incomplete UTF-8 character, or nothing new
            return None
        return self._chunk(r, text, shown)

    @staticmethod
    def _chunk(r: int, text: str, shown: dict[int, str], *, done: bool = False,
               finish_reason: str | None = None) -> TextChunk:
        before = shown.get(r, "")
        rewritten = not text.startswith(before)
        shown[r] = text
        return TextChunk(r, text if rewritten else text[len(before) :], text, done, finish_reason, rewritten)
