"""``pipeline("text-generation")``: continue prompts with a decoder-only model (GPT).

Dimension key: B prompts, R sequences per prompt (``num_return_sequences``), N new tokens.

    gen = attnlab.pipeline("text-generation", model="runs/shakespeare")
    gen("ROMEO:", max_new_tokens=40, do_sample=True, seed=0)   # [{"generated_text": "ROMEO: ..."}]
    gen(["a", "b"], num_return_sequences=2, do_sample=True)      # [[{...}, {...}], [{...}, {...}]]
    for chunk in gen.stream("ROMEO:", max_new_tokens=40):       # TextChunk(index, delta, text, ...)
        print(chunk.delta, end="")

Every :class:`~attnlab.generation.GenerationConfig` field is an option; ``cancel=`` takes a
``threading.Event`` checked after every token (set it to stop with ``GenerationCancelled``). Prompts are encoded without
special tokens (as HF's GPT-2 tokenizer does); an empty prompt starts from the model's BOS token.
``generated_text`` is the prompt followed by the continuation (``return_full_text=False``: the
continuation only); the continuation is the decoded prompt+new ids minus the decoded prompt, so
tokenizers that join pieces (WordPiece ``##``) continue the last word correctly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from torch import nn

from attnlab.generation import make_generator
from attnlab.generation.runners import is_encoder_decoder
from attnlab.pipelines.base import encode_rows
from attnlab.pipelines.generative import Completion, GenerativePipeline


class TextGenerationPipeline(GenerativePipeline):
    """Returns ``[{"generated_text": ...}]`` (R dicts) per prompt; a list of prompts gives a list of those."""

    task = "text-generation"

    def __init__(self, model: nn.Module, tokenizer: Any = None, **kwargs: Any) -> None:
        if is_encoder_decoder(model) or not callable(getattr(model, "new_kv_caches", None)):
            raise ValueError(
                f"text-generation needs a decoder-only model such as GPT, got {type(model).__name__}; "
                "encoder-decoder models run under 'text2text-generation' or 'translation'"
            )
        super().__init__(model, tokenizer, **kwargs)

    def encode_prompts(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_rows(self._require_tokenizer(), texts, add_special_tokens=False, max_length=None)

    def _new_text(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        tok = self._require_tokenizer()
        if not prompt_ids:
            return tok.decode(new_ids)
        head, full = tok.decode(prompt_ids), tok.decode(prompt_ids + new_ids)
        return full[len(head) :] if full.startswith(head) else tok.decode(new_ids)

    def _check_params(self, *, return_full_text: bool = True, return_tensors: bool = False,
                      cancel: threading.Event | None = None, **options: Any) -> dict[str, Any]:
        config = self.generation_options(**options)
        return {
            "config": config, "generator": make_generator(config.seed, self.device), "cancel": cancel,
            "return_full_text": bool(return_full_text), "return_tensors": bool(return_tensors),
        }

    def _run_batch(self, items: list[str], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        groups = self.complete(items, params["config"], generator=params["generator"], cancel=params["cancel"])
        return [[self._record(text, c, params) for c in group] for text, group in zip(items, groups)]

    @staticmethod
    def _record(prompt: str, c: Completion, params: dict[str, Any]) -> dict[str, Any]:
        if params["return_tensors"]:
            return {"generated_token_ids": c.prompt_ids + c.token_ids}
        return {"generated_text": prompt + c.text if params["return_full_text"] else c.text}
