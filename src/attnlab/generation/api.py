"""``generate``: one entry point for every strategy and both model shapes.

Dimension key: B prompts, R sequences returned per prompt, P padded prompt length, L generated
length (the longest row), V vocab.

    out = generate(model, ids, attention_mask=mask, max_new_tokens=32, num_beams=4)
    out.sequences   (B*R, P + L) decoder-only: the left-padded prompt then the new tokens
                    (B*R, 1 + L) encoder-decoder: the decoder start token then the new tokens
    out.new_tokens  (B*R, L)     the new tokens, ``pad_id`` after each row's end
    out.lengths     (B*R,)       new tokens per row, eos included

A :class:`GenerationSession` prepares everything (prompt batch, runner, processors, stopping) and
exposes the decode as an iterator, which :func:`generate` drains and
:class:`~attnlab.generation.streaming.TextStreamer` turns into text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.generation.beam import BeamSearch
from attnlab.generation.config import GenerationConfig
from attnlab.generation.decode import token_steps
from attnlab.generation.processors import NO_TOKEN, build_processors
from attnlab.generation.prompts import (
    Prompt,
    check_vocab,
    eos_list,
    fill_empty_rows,
    pad_rows,
    prompt_rows,
    resolve_pad,
    resolve_start,
)
from attnlab.generation.runners import (
    CachedDecoderOnly,
    CachedEncoderDecoder,
    Runner,
    UncachedDecoderOnly,
    UncachedEncoderDecoder,
    is_encoder_decoder,
)
from attnlab.generation.sampling import make_generator
from attnlab.generation.static import StaticDecoderOnly
from attnlab.generation.stopping import StopState, decode_ids


@dataclasses.dataclass
class GenerationOutput:
    sequences: Tensor  # (B*R, P + L) or (B*R, 1 + L), see the module docstring
    new_tokens: Tensor  # (B*R, L)
    lengths: Tensor  # (B*R,)
    scores: Tensor | None = None  # (B*R,) beam scores: sum log-prob / length ** length_penalty
    logits: Tensor | None = None  # (B*R, L, V) raw logits of every step, when return_logits
    texts: list[str] | None = None  # decoded new tokens (a final eos dropped), given a tokenizer


class GenerationSession:
    """Everything one ``generate`` call needs, with the decode exposed as :meth:`steps`.

    The constructor validates and pads the prompts; the model runs only inside :meth:`steps`
    (which builds the runner: encodes the source, allocates caches, compiles the fast path).
    """

    def __init__(
        self,
        model: nn.Module,
        prompt: Prompt,
        config: GenerationConfig,
        *,
        attention_mask: Tensor | None = None,
        tokenizer: Any = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.model, self.cfg, self.tokenizer = model, config, tokenizer
        self.device = next(model.parameters()).device
        self.encoder_decoder = is_encoder_decoder(model)
        self.eos_ids = eos_list(config, model)
        self.pad_id = resolve_pad(config, model, self.eos_ids)
        self.expand = config.num_beams if config.num_beams > 1 else config.num_return_sequences
        self.generator = generator if generator is not None else make_generator(config.seed, self.device)
        rows = prompt_rows(prompt, attention_mask, tokenizer)
        bos = config.bos_id if config.bos_id is not None else getattr(model.config, "bos_id", None)
        rows = fill_empty_rows(rows, bos)
        check_vocab(rows, getattr(model.config, "vocab_size", None))
        self._check_context(max(len(r) for r in rows))
        ids, valid = pad_rows(rows, self.pad_id, left=not self.encoder_decoder, device=self.device)
        self.prompt_ids, self.prompt_valid = ids, valid  # (B, P)
        self.history = self._history(ids, valid)  # (B*R, P0 + N)
        self.p0 = self.history.shape[1] - config.max_new_tokens
        self.processors = build_processors(
            config, prompt_len=self.p0, eos_ids=self.eos_ids, beams=config.num_beams > 1
        )
        self.logits: list[Tensor] | None = [] if config.return_logits else None
        self.search: BeamSearch | None = None
        self.stop: StopState | None = None

    def _check_context(self, prompt_len: int) -> None:
        ctx, n = getattr(self.model.config, "max_len", None), self.cfg.max_new_tokens
        if ctx is None:
            return
        if _own_runner(self.model):  # a recurrent encoder reads any length; max_len caps the output
            if n > ctx:
                raise ValueError(f"max_new_tokens {n} exceeds the model's output cap max_len={ctx}; lower it")
            return
        if self.encoder_decoder:
            if prompt_len > ctx:
                raise ValueError(f"source length {prompt_len} exceeds the model's context max_len={ctx}")
            if 1 + n > ctx:
                raise ValueError(
                    f"decoder start + max_new_tokens = {1 + n} exceeds the model's context max_len={ctx}; "
                    f"lower max_new_tokens to <= {ctx - 1}"
                )
        elif prompt_len + n > ctx:
            raise ValueError(
                f"prompt length {prompt_len} + max_new_tokens {n} = {prompt_len + n} exceeds the model's "
                f"context max_len={ctx}; shorten the prompt or lower max_new_tokens to <= {max(ctx - prompt_len, 0)}"
            )

    def _make_runner(self) -> Runner:
        ids, valid = self.prompt_ids, self.prompt_valid
        n, cfg = self.cfg.max_new_tokens, self.cfg
        if _own_runner(self.model):  # e.g. the classic RNN encoder-decoders: incremental by construction
            start = resolve_start(cfg, self.model)
            return self.model.make_runner(ids, valid, n, start_id=start, expand=self.expand)
        if self.encoder_decoder:
            cls = CachedEncoderDecoder if cfg.use_cache else UncachedEncoderDecoder
            return cls(self.model, ids, valid, n, start_id=resolve_start(cfg, self.model), expand=self.expand)
        ids, valid = ids.repeat_interleave(self.expand, 0), valid.repeat_interleave(self.expand, 0)
        if not cfg.use_cache:
            return UncachedDecoderOnly(self.model, ids, valid, n)
        if cfg.compile:
            return StaticDecoderOnly(self.model, ids, valid, n)
        return CachedDecoderOnly(self.model, ids, valid, n)

    def _history(self, ids: Tensor, valid: Tensor) -> Tensor:
        """(B*R, P0 + N): the tokens processors see; -1 in padding, new tokens appended in place."""
        if self.encoder_decoder:
            prefix = torch.full((ids.shape[0], 1), resolve_start(self.cfg, self.model), device=self.device)
        else:
            prefix = ids.masked_fill(~valid, NO_TOKEN)  # (B, P)
        prefix = prefix.repeat_interleave(self.expand, 0)
        tail = torch.full((prefix.shape[0], self.cfg.max_new_tokens), NO_TOKEN, dtype=torch.long, device=self.device)
        return torch.cat([prefix.long(), tail], dim=1)

    @torch.no_grad()
    def steps(self) -> Iterator[Tensor]:
        """Decode; yields the new tokens so far (B*R, t) after each step (the best beam per row for beam search)."""
        runner = self._make_runner()  # encodes the source / sets up caches (and compiles) here
        if self.cfg.num_beams > 1:
            self.search = BeamSearch(
                runner, self.history[:, : self.p0], self.processors, self.cfg, eos_ids=self.eos_ids,
                pad_id=self.pad_id, tokenizer=self.tokenizer, generator=self.generator,
            )
            yield from self.search.steps()
            return
        self.stop = StopState(
            self.history.shape[0], self.cfg.max_new_tokens, eos_ids=self.eos_ids, pad_id=self.pad_id,
            device=self.device, stop_strings=self.cfg.stop_strings, tokenizer=self.tokenizer,
        )
        for t, _ in enumerate(token_steps(
            runner, self.history, self.processors, self.stop, do_sample=self.cfg.do_sample,
            generator=self.generator, logits_out=self.logits,
        )):
            yield self.stop.new_tokens[:, : t + 1]

    def output(self) -> GenerationOutput:
        """The result, once :meth:`steps` is exhausted."""
        scores = None
        if self.search is not None:
            R = self.cfg.num_return_sequences
            new_tokens, lengths, scores = self.search.best(R)
            prefix_rows = R
        elif self.stop is not None:
            new_tokens, lengths, prefix_rows = self.stop.new_tokens, self.stop.lengths, self.expand
        else:
            raise RuntimeError("output() called before the decode ran; iterate steps() first")
        L = max(int(lengths.max()), 1)
        new_tokens = new_tokens[:, :L]
        prefix = self._output_prefix().repeat_interleave(prefix_rows, 0)
        logits = torch.stack(self.logits, dim=1)[:, :L] if self.logits else None  # (B*R, L, V)
        return GenerationOutput(
            sequences=torch.cat([prefix, new_tokens], dim=1), new_tokens=new_tokens, lengths=lengths,
            scores=scores, logits=logits, texts=self._texts(new_tokens, lengths),
        )

    def _output_prefix(self) -> Tensor:
        if self.encoder_decoder:
            return torch.full((self.prompt_ids.shape[0], 1), resolve_start(self.cfg, self.model), device=self.device)
        return self.prompt_ids

    def _texts(self, new_tokens: Tensor, lengths: Tensor) -> list[str] | None:
        if self.tokenizer is None or not callable(getattr(self.tokenizer, "decode", None)):
            return None
        texts = []
        for row, n in zip(new_tokens.tolist(), lengths.tolist()):
            row = row[:n]
            if row and row[-1] in self.eos_ids:
                row = row[:-1]
            texts.append(decode_ids(self.tokenizer, row))
        return texts


def _own_runner(model: nn.Module) -> bool:
    """Models that build their own :class:`Runner` via ``make_runner(ids, valid, n, start_id=, expand=)``."""
    return callable(getattr(model, "make_runner", None))


def generate(
    model: nn.Module,
    prompt: Prompt,
    *,
    attention_mask: Tensor | None = None,
    tokenizer: Any = None,
    config: GenerationConfig | None = None,
    generator: torch.Generator | None = None,
    **options: Any,
) -> GenerationOutput:
    """Generate continuations (decoder-only) or target sequences (encoder-decoder).

    Args:
        model: a GPT-style model (``forward`` + ``new_kv_caches``) or an encoder-decoder
            (``encode`` / ``decode`` / ``new_kv_caches`` / ``new_cross_caches``), or any model with
            ``make_runner(ids, valid, max_new_tokens, start_id=, expand=)`` returning a :class:`Runner`
            (the classic RNN encoder-decoders of :mod:`attnlab.classic`).
        prompt: text (with ``tokenizer``), ids (list, ragged list of lists, or (P,) / (B, P) tensor).
        attention_mask: (B, P) validity of a tensor prompt (True/1 = real token).
        tokenizer: anything with ``encode(text)`` and ``decode(ids) -> str``; enables text prompts,
            ``stop_strings`` and ``GenerationOutput.texts``.
        config: a :class:`GenerationConfig`; ``options`` override its fields (e.g. ``max_new_tokens=50``).
        generator: a torch.Generator for sampling (default: one seeded by ``config.seed``, or torch's global RNG).
    """
    config = config or GenerationConfig()
    if options:
        config = config.replace(**options)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            session = GenerationSession(
                model, prompt, config, attention_mask=attention_mask, tokenizer=tokenizer, generator=generator
            )
            for _ in session.steps():
                pass
            return session.output()
    finally:
        model.train(was_training)
