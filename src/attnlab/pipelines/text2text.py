"""``pipeline("translation")`` and ``pipeline("text2text-generation")``: encoder–decoder models.

Dimension key: B sources, S source length, R sequences per source, N new tokens.

    tr = attnlab.pipeline("translation_en_to_fr", model="t5-folder")   # prefix "translate English to French: "
    tr("The house is wonderful.")          # [{"translation_text": "..."}]
    tr(["a", "b"], num_beams=4)            # [{"translation_text": ...}, {"translation_text": ...}]

Sources are encoded without special tokens, cut to the model's source limit and closed with the
model's eos token, which is what both T5 (``... </s>``) and attnlab's translation Transformer
expect. T5 was trained with task prefixes; the prefix is, in order: ``prefix=``, the folder's
``task_specific_params["translation_{src}_to_{tgt}"]["prefix"]`` (as in released T5 configs), or
``"translate {Source} to {Target}: "`` built from ``src_lang`` / ``tgt_lang`` (given directly or by
the task name ``translation_en_to_de``). Other models get no prefix unless one is given.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import nn

from attnlab.generation import make_generator
from attnlab.generation.runners import is_encoder_decoder
from attnlab.pipelines.base import encode_rows
from attnlab.pipelines.generative import GenerativePipeline, generation_defaults

LANGUAGE_NAMES = {
    "en": "English", "de": "German", "fr": "French", "ro": "Romanian", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean",
    "ar": "Arabic", "cs": "Czech", "fi": "Finnish", "tr": "Turkish", "pl": "Polish", "sv": "Swedish",
}
DEFAULT_SOURCE_LIMIT = 512  # source tokens kept for models without a fixed context (T5's relative positions)


def language_name(code: str) -> str:
    key = code.lower().replace("_", "-").split("-")[0]
    return LANGUAGE_NAMES.get(key, code)


class Text2TextGenerationPipeline(GenerativePipeline):
    """Returns ``[{"generated_text": ...}]`` per source (a list of R dicts per source when R > 1)."""

    task = "text2text-generation"
    output_key: ClassVar[str] = "generated_text"

    def __init__(self, model: nn.Module, tokenizer: Any = None, *, prefix: str | None = None, **kwargs: Any) -> None:
        if not is_encoder_decoder(model):
            raise ValueError(
                f"{self.task} needs an encoder-decoder model (T5, attnlab's Transformer), got {type(model).__name__}; "
                "decoder-only models run under 'text-generation'"
            )
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
        super().__init__(model, tokenizer, **kwargs)
        self.prefix = prefix

    @property
    def is_t5(self) -> bool:
        return getattr(self.model.config, "model_type", None) == "t5"

    def source_limit(self) -> int:
        """Source tokens kept (eos included): the model's context, else the tokenizer's, else 512."""
        return self._text_limit(None) or DEFAULT_SOURCE_LIMIT

    def encode_prompts(self, texts: Sequence[str]) -> list[list[int]]:
        eos = getattr(self.model.config, "eos_id", None)
        if eos is None:
            raise ValueError("the model config has no eos_id, which closes every source sequence; set one")
        prefix = self.prefix or ""
        rows = encode_rows(self._require_tokenizer(), [prefix + t for t in texts], add_special_tokens=False,
                           max_length=None)
        keep = self.source_limit() - 1
        return [row[:keep] + [int(eos)] for row in rows]

    def _check_params(self, *, return_tensors: bool = False, cancel: threading.Event | None = None,
                      **options: Any) -> dict[str, Any]:
        config = self.generation_options(**options)
        return {"config": config, "generator": make_generator(config.seed, self.device),
                "return_tensors": bool(return_tensors), "cancel": cancel}

    def _run_batch(self, items: list[str], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        groups = self.complete(items, params["config"], generator=params["generator"], cancel=params["cancel"])
        key = self.output_key.replace("_text", "_token_ids") if params["return_tensors"] else self.output_key
        return [[{key: c.token_ids if params["return_tensors"] else c.text.strip()} for c in g] for g in groups]

    def _format(self, results: list[Any], single: bool, params: dict[str, Any]) -> Any:
        if params["config"].num_return_sequences == 1:  # HF: one dict per source, in a list even for one
            return [group[0] for group in results]
        return results[0] if single else results


class TranslationPipeline(Text2TextGenerationPipeline):
    """Returns ``[{"translation_text": ...}]``; T5 gets its task prefix (see the module docstring)."""

    task = "translation"
    output_key = "translation_text"

    def __init__(self, model: nn.Module, tokenizer: Any = None, *, src_lang: str | None = None,
                 tgt_lang: str | None = None, prefix: str | None = None, **kwargs: Any) -> None:
        explicit_config = kwargs.get("generation_config") is not None
        super().__init__(model, tokenizer, prefix=prefix, **kwargs)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        params = self._task_params()
        if self.prefix is None and self.is_t5:
            self.prefix = params.get("prefix") or self._built_prefix()
        if not explicit_config:
            self._apply_task_generation(params)

    def _apply_task_generation(self, params: dict[str, Any]) -> None:
        """Beam settings of ``task_specific_params``, unless generation_config.json already fixed them."""
        wanted = {k: params[k] for k in ("num_beams", "early_stopping") if k in params}
        if isinstance(params.get("max_length"), int) and params["max_length"] > 1:
            wanted["max_new_tokens"] = params["max_length"] - 1  # HF counts the decoder start token
        fixed = set(generation_defaults(self.model_dir))
        wanted = {k: v for k, v in wanted.items() if k not in fixed}
        if wanted:
            self.generation_config = self.generation_config.replace(**wanted)

    def _task_params(self) -> dict[str, Any]:
        if not (self.src_lang and self.tgt_lang):
            return {}
        table = self.hf_config.get("task_specific_params") or {}
        found = table.get(f"translation_{self.src_lang}_to_{self.tgt_lang}")
        return dict(found) if isinstance(found, dict) else {}

    def _built_prefix(self) -> str:
        if not (self.src_lang and self.tgt_lang):
            raise ValueError(
                "T5 translates with a task prefix: use pipeline('translation_en_to_fr', ...), pass src_lang= and "
                "tgt_lang=, or give the prefix itself (prefix='translate English to French: ', or '' for none)"
            )
        return f"translate {language_name(self.src_lang)} to {language_name(self.tgt_lang)}: "

