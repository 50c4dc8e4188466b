"""The pipeline base class: one input or a list in, plain lists of dicts out, batched internally.

Dimension key: B batch (inputs run together), T padded token length, D model width.

A task pipeline implements two hooks:

    _check_params(**params) -> dict   validate the call's options once (typed errors naming the fix)
    _run_batch(items, params) -> list  one result per item of a batch, in order

and the base class takes care of the rest: telling a single input from a list, sorting the inputs
by length so that batches pad little, running them ``batch_size`` at a time under
``torch.no_grad()`` and putting the results back in input order. A single input returns its own
result, a list returns a list of results, as HF transformers' pipelines do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

DEFAULT_BATCH_SIZE = 8


def resolve_device(device: str | int | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """``None`` keeps the model's device (CPU for a fresh one); ``-1`` / ``"cpu"``; ``0`` / ``"cuda:0"``; ``"auto"``."""
    if device is None:
        params = next(model.parameters(), None) if model is not None else None
        return params.device if params is not None else torch.device("cpu")
    if isinstance(device, int):
        device = "cpu" if device < 0 else f"cuda:{device}"
    from attnlab.tasks.common import resolve_device as resolve_named

    return resolve_named(device, cpu_hint="device='cpu'")


class Pipeline:
    """A model and its tokenizer behind ``__call__(inputs, **options)``; see the module docstring."""

    task: ClassVar[str] = ""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any = None,
        *,
        device: str | int | torch.device | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        model_dir: str | Path | None = None,
        hf_config: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"model must be an nn.Module (or pass a folder path to pipeline()), got {type(model).__name__}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.device = resolve_device(device, model)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.model_dir = None if model_dir is None else Path(model_dir)
        self.hf_config = dict(hf_config or {})  # the folder's raw config.json (task_specific_params, ...)

    def __repr__(self) -> str:
        where = f", model_dir={str(self.model_dir)!r}" if self.model_dir else ""
        model = type(self.model).__name__
        return f"{type(self).__name__}(task={self.task!r}, model={model}{where}, device={self.device})"

    # ---- the call ----------------------------------------------------------------------------

    def __call__(self, inputs: Any, **params: Any) -> Any:
        single = self._is_single(inputs)
        items = [inputs] if single else list(inputs)
        if not items:
            raise ValueError(f"{self.task}: got an empty list of inputs; pass a string or a non-empty list")
        for i, item in enumerate(items):
            self._check_item(item, i)
        checked = self._check_params(**params)
        results = self._run(items, checked)
        return self._format(results, single, checked)

    def _is_single(self, inputs: Any) -> bool:
        if isinstance(inputs, str):
            return True
        if isinstance(inputs, (list, tuple)):
            return False
        raise TypeError(f"{self.task}: inputs must be a string or a list of strings, got {type(inputs).__name__}")

    def _check_item(self, item: Any, index: int) -> None:
        if not isinstance(item, str):
            raise TypeError(f"{self.task}: input {index} must be a string, got {type(item).__name__}")

    def _check_params(self, **params: Any) -> dict[str, Any]:
        if params:
            raise TypeError(f"{self.task} takes no options, got {sorted(params)}")
        return {}

    def _format(self, results: list[Any], single: bool, params: dict[str, Any]) -> Any:
        return results[0] if single else results

    def _length(self, item: Any) -> int:
        """Sort key that groups inputs of similar size into one batch (characters for text)."""
        return len(item) if isinstance(item, str) else 0

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        order = sorted(range(len(items)), key=lambda i: self._length(items[i]))
        out: list[Any] = [None] * len(items)
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                for i, result in zip(idx, self._run_batch([items[i] for i in idx], params)):
                    out[i] = result
        return out

    def _run_batch(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement _run_batch")

    # ---- helpers shared by the text tasks ----------------------------------------------------

    def _require_tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise ValueError(
                f"{self.task} needs a tokenizer: put a tokenizer.json in the model folder or pass tokenizer=..."
            )
        return self.tokenizer

    def _text_limit(self, max_length: int | None) -> int | None:
        """Truncation length: the caller's, else the smaller of the model's context and the tokenizer's."""
        if max_length is not None:
            if not isinstance(max_length, int) or max_length < 2:
                raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
            return max_length
        limits = [getattr(self.model.config, "max_len", None), getattr(self.tokenizer, "model_max_length", None)]
        limits = [n for n in limits if isinstance(n, int) and n > 0]
        return min(limits) if limits else None

    def _encode_padded(
        self, texts: Sequence[str], *, max_length: int | None, add_special_tokens: bool = True
    ) -> tuple[Tensor, Tensor, list[list[int]]]:
        """(ids (B, T), valid (B, T) bool, the unpadded id rows), right-padded, on the pipeline's device."""
        tok = self._require_tokenizer()
        rows = encode_rows(tok, texts, add_special_tokens=add_special_tokens, max_length=max_length)
        pad = tok.pad_id if getattr(tok, "pad_id", None) is not None else 0
        ids, valid = pad_right(rows, pad)
        return ids.to(self.device), valid.to(self.device), rows


def encode_rows(
    tokenizer: Any, texts: Sequence[str], *, add_special_tokens: bool, max_length: int | None
) -> list[list[int]]:
    """Unpadded ids per text, with an attnlab ``Tokenizer`` or any ``encode(text, add_special_tokens=)`` one."""
    if callable(getattr(tokenizer, "encode_many", None)):
        return tokenizer.encode_many(list(texts), add_special_tokens=add_special_tokens, max_length=max_length)
    rows = []
    for text in texts:
        ids = list(tokenizer.encode(text, add_special_tokens=add_special_tokens))
        rows.append(ids if max_length is None else ids[:max_length])
    return rows


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """ids (B, T) long and valid (B, T) bool from ragged rows, padded on the right."""
    T = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), max(T, 1)), pad_id, dtype=torch.long)  # (B, T)
    valid = torch.zeros(len(rows), max(T, 1), dtype=torch.bool)  # (B, T)
    for b, row in enumerate(rows):
        if row:
            ids[b, : len(row)] = torch.tensor(list(row), dtype=torch.long)
            valid[b, : len(row)] = True
    return ids, valid


def check_top_k(top_k: Any, *, allow_none: bool = False) -> int | None:
    if top_k is None and allow_none:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        extra = " or None (all)" if allow_none else ""
        raise ValueError(f"top_k must be an integer >= 1{extra}, got {top_k!r}")
    return top_k


SCORE_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "softmax": lambda x: x.softmax(-1),
    "sigmoid": torch.sigmoid,
    "none": lambda x: x,
}


def check_function(name: Any) -> str | None:
    if name is None:
        return None
    key = str(name).lower()
    if key not in SCORE_FUNCTIONS:
        raise ValueError(f"function_to_apply must be one of {sorted(SCORE_FUNCTIONS)}, got {name!r}")
    return key


def ranked_labels(scores: Tensor, id2label: dict[int, str], top_k: int | None) -> list[dict[str, Any]]:
    """[{"label", "score"}] best first, for one row of class scores (C,)."""
    k = scores.shape[-1] if top_k is None else min(top_k, scores.shape[-1])
    values, index = scores.float().topk(k)
    return [{"label": id2label.get(int(i), f"LABEL_{int(i)}"), "score": float(v)} for v, i in zip(values, index)]

