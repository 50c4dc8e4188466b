"""Training tasks: small objects that turn (model, batch) into a summed loss, a count and metric sums.

Dimension key: B batch, T target / text length, S source length, V vocabulary, C classes.

A task is any object with ``__call__(model, batch) -> TaskOutput`` (see :class:`Task`). Batches are
dicts of tensors, as the collators of :mod:`attnlab.data` make them (``-100`` marks ignored labels):

- :class:`LanguageModelingTask`: ``ids`` (B, T) (or ``input_ids``), optional ``labels`` (B, T) already
  aligned with the logits (label t is the token after input t), optional ``attention_mask`` (B, T) bool.
  Without ``labels`` the ids are shifted left and the last position (and padding) is ignored.
- :class:`Seq2SeqTask`: ``src_ids`` (B, S), ``labels`` (B, T), optional ``src_valid`` (B, S) and
  ``tgt_in`` (B, T) (default: ``labels`` shifted right behind the decoder start token).
- :class:`ClassificationTask`: ``ids`` (B, T) (or ``input_ids``) with optional ``attention_mask``, or
  ``pixel_values`` (B, C, H, W); ``labels`` (B,).

``TaskOutput.loss`` is a SUM over counted units (tokens, or examples for classification); the trainer
divides by the total ``n_tokens`` across micro-batches and processes, so accumulation and multi-process
training give the same gradients as one big batch. Metric values are sums over the same units; the
trainer reports their means and whatever :meth:`Task.summarize` derives (perplexity, for instance).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from torch import Tensor, nn

from attnlab.models.common import shift_right
from attnlab.training.losses import IGNORE_INDEX, token_losses

Batch = Mapping[str, Any]


class TaskOutput(NamedTuple):
    loss: Tensor  # 0-dim: sum of per-unit losses, with the autograd graph
    n_tokens: Tensor  # 0-dim: number of counted units (tokens or examples)
    metrics: dict[str, Tensor]  # 0-dim detached sums over the same units


@runtime_checkable
class Task(Protocol):
    """``task(model, batch) -> TaskOutput``; ``unit`` names what ``n_tokens`` counts ("tok" or "ex")."""

    unit: str

    def __call__(self, model: nn.Module, batch: Batch) -> TaskOutput: ...

    def summarize(self, means: dict[str, float]) -> dict[str, float]: ...


def _require(batch: Batch, *keys: str) -> Tensor:
    for key in keys:
        if key in batch:
            return batch[key]
    raise ValueError(f"batch has no {' or '.join(repr(k) for k in keys)}; it has keys {sorted(batch)}")


class _CrossEntropyTask:
    unit = "tok"

    def __init__(self, *, label_smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def _output(self, logits: Tensor, labels: Tensor) -> TaskOutput:
        loss, nll, valid = token_losses(
            logits, labels, smoothing=self.label_smoothing, ignore_index=self.ignore_index
        )  # (N,) each
        correct = (logits.detach().argmax(dim=-1).reshape(-1) == labels.reshape(-1)) & valid  # (N,)
        metrics = {"nll": nll.detach().sum(), "accuracy": correct.sum().float()}
        return TaskOutput(loss.sum(), valid.sum(), metrics)

    def summarize(self, means: dict[str, float]) -> dict[str, float]:
        return {"ppl": math.exp(min(means["nll"], 50.0))} if "nll" in means else {}


class LanguageModelingTask(_CrossEntropyTask):
    """Next-token prediction for decoder-only models: ``model(ids[, attention_mask=]) -> (B, T, V)``."""

    def __call__(self, model: nn.Module, batch: Batch) -> TaskOutput:
        ids = _require(batch, "ids", "input_ids")  # (B, T)
        mask = batch.get("attention_mask")
        logits = model(ids) if mask is None else model(ids, attention_mask=mask)  # (B, T, V)
        labels = batch.get("labels")
        if labels is None:
            labels = ids.roll(-1, dims=1)  # (B, T): label t is input t + 1
            labels[:, -1] = self.ignore_index
            if mask is not None:
                labels = labels.masked_fill(~mask.roll(-1, dims=1), self.ignore_index)
        return self._output(logits, labels)


class Seq2SeqTask(_CrossEntropyTask):
    """Teacher-forced translation: ``model(src_ids, tgt_in, src_valid) -> (B, T, V)``.

    ``start_id`` / ``pad_id`` (used only when the batch has no ``tgt_in``) default to the model
    config's ``decoder_start_id`` (or ``bos_id``) and ``pad_id``.
    """

    def __init__(
        self, *, label_smoothing: float = 0.1, ignore_index: int = IGNORE_INDEX,
        start_id: int | None = None, pad_id: int | None = None,
    ) -> None:
        super().__init__(label_smoothing=label_smoothing, ignore_index=ignore_index)
        self.start_id, self.pad_id = start_id, pad_id

    def _tgt_in(self, model: nn.Module, labels: Tensor) -> Tensor:
        config = getattr(model, "config", None)
        start = self.start_id if self.start_id is not None else getattr(config, "decoder_start_id", None)
        start = start if start is not None else getattr(config, "bos_id", None)
        pad = self.pad_id if self.pad_id is not None else getattr(config, "pad_id", None)
        if start is None or pad is None:
            raise ValueError("the batch has no 'tgt_in' and the decoder start/pad ids are unknown; pass "
                             "Seq2SeqTask(start_id=..., pad_id=...) or add 'tgt_in' to the batch")
        return shift_right(labels, start, pad, self.ignore_index)  # (B, T)

    def __call__(self, model: nn.Module, batch: Batch) -> TaskOutput:
        src = _require(batch, "src_ids")  # (B, S)
        labels = _require(batch, "labels")  # (B, T)
        tgt_in = batch.get("tgt_in")
        if tgt_in is None:
            tgt_in = self._tgt_in(getattr(model, "module", model), labels)
        logits = model(src, tgt_in, batch.get("src_valid"))  # (B, T, V)
        return self._output(logits, labels)


class ClassificationTask(_CrossEntropyTask):
    """Sequence or image classification: ``model(ids[, attention_mask=])`` or ``model(pixel_values)`` -> (B, C)."""

    unit = "ex"

    def __call__(self, model: nn.Module, batch: Batch) -> TaskOutput:
        labels = _require(batch, "labels", "label")  # (B,)
        if "pixel_values" in batch:
            logits = model(batch["pixel_values"])  # (B, C)
        else:
            ids = _require(batch, "ids", "input_ids")  # (B, T)
            mask = batch.get("attention_mask")
            logits = model(ids) if mask is None else model(ids, attention_mask=mask)  # (B, C)
        if logits.dim() != 2:
            raise ValueError(f"a classifier must return (B, C) logits, got shape {tuple(logits.shape)}")
        return self._output(logits, labels)

    def summarize(self, means: dict[str, float]) -> dict[str, float]:
        return {}


TASKS: dict[str, type[_CrossEntropyTask]] = {
    "lm": LanguageModelingTask,
    "seq2seq": Seq2SeqTask,
    "translation": Seq2SeqTask,
    "classification": ClassificationTask,
}


def make_task(name: str, **kwargs: Any) -> Task:
    """A task by name: ``"lm"``, ``"seq2seq"`` (alias ``"translation"``) or ``"classification"``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name](**kwargs)
