"""GenerationConfig: every decoding knob in one validated dataclass.

Dimension key: B batch, V vocab, N new tokens.

Strategies follow from the fields, as in HF transformers:

    num_beams == 1, do_sample False   greedy
    num_beams == 1, do_sample True    sampling (temperature, top_k, top_p)
    num_beams  > 1, do_sample False   beam search (length_penalty, early_stopping)
    num_beams  > 1, do_sample True    beam sampling

Token ids left as ``None`` (eos_id, pad_id, bos_id, decoder_start_id) are taken from the model's
config when generation starts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

EarlyStopping = bool | str  # True, False or "never"


@dataclasses.dataclass
class GenerationConfig:
    """Decoding settings; invalid combinations raise ``ValueError`` naming the field and its limit."""

    max_new_tokens: int = 20
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1.0: no nucleus filter
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: EarlyStopping = False
    num_return_sequences: int = 1
    eos_id: int | Sequence[int] | None = None  # None: the model's eos_id
    ignore_eos: bool = False  # never stop at eos (benchmarks); min/max_new_tokens still apply
    pad_id: int | None = None  # None: the model's pad_id, else its eos_id, else 0
    bos_id: int | None = None  # used for empty prompts; None: the model's bos_id
    decoder_start_id: int | None = None  # encoder-decoder only; None: the model's
    stop_strings: Sequence[str] = ()  # needs a tokenizer with decode(ids) -> str
    seed: int | None = None  # seeds a private torch.Generator: same seed, same samples
    use_cache: bool = True  # False recomputes the whole prefix every step (reference path)
    compile: bool = False  # decoder-only: static cache + torch.compile(mode="reduce-overhead") step
    return_logits: bool = False  # keep the raw (B, N, V) logits of every step (not with beams)

    def __post_init__(self) -> None:
        if isinstance(self.stop_strings, str):
            self.stop_strings = (self.stop_strings,)
        self.stop_strings = tuple(self.stop_strings)
        self._check_lengths()
        self._check_sampling()
        self._check_beams()
        if self.repetition_penalty <= 0 or not math.isfinite(self.repetition_penalty):
            raise ValueError(f"repetition_penalty must be a finite number > 0 (1.0 = off), got {self.repetition_penalty}")
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be >= 0 (0 = off), got {self.no_repeat_ngram_size}")
        if any(not s for s in self.stop_strings):
            raise ValueError("stop_strings must be non-empty strings")

    def _check_lengths(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) must not exceed max_new_tokens ({self.max_new_tokens})"
            )

    def _check_sampling(self) -> None:
        if self.do_sample and not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(
                f"temperature must be > 0 when sampling, got {self.temperature}; use do_sample=False for greedy"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p} (1.0 = off)")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k} (0 = off)")

    def _check_beams(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.num_return_sequences < 1:
            raise ValueError(f"num_return_sequences must be >= 1, got {self.num_return_sequences}")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            raise ValueError(
                f"num_return_sequences ({self.num_return_sequences}) must be <= num_beams ({self.num_beams})"
            )
        if self.num_beams == 1 and not self.do_sample and self.num_return_sequences > 1:
            raise ValueError(
                "greedy search returns one sequence per prompt; set do_sample=True or num_beams >= "
                f"{self.num_return_sequences} to get num_return_sequences={self.num_return_sequences}"
            )
        if self.num_beams > 1 and self.return_logits:
            raise ValueError("return_logits is for greedy/sampling; beam search keeps no per-row logits")

    @property
    def strategy(self) -> str:
        """'greedy', 'sample', 'beam' or 'beam_sample'."""
        if self.num_beams > 1:
            return "beam_sample" if self.do_sample else "beam"
        return "sample" if self.do_sample else "greedy"

    def replace(self, **changes: Any) -> GenerationConfig:
        """A validated copy with ``changes`` applied."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = sorted(f.name for f in dataclasses.fields(self))
            raise TypeError(f"unknown generation option(s) {unknown}; known options: {known}")
        return dataclasses.replace(self, **changes)
