"""``pipeline(task, model=DIR)``: build the pipeline of a task from a local model folder (or a model object).

Dimension key: none (construction only).

    attnlab.pipeline("text-generation", model="runs/shakespeare")
    attnlab.pipeline("sentiment-analysis", model="runs/sst2", device="cuda")
    attnlab.pipeline("translation_en_to_fr", model="t5-folder")
    attnlab.pipeline(model="runs/sst2")                   # the task read from the folder
    attnlab.pipeline("fill-mask", model=bert_mlm, tokenizer=tok)   # objects instead of a folder
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.pipelines.base import DEFAULT_BATCH_SIZE, Pipeline, resolve_device
from attnlab.pipelines.feature_extraction import FeatureExtractionPipeline
from attnlab.pipelines.fill_mask import FillMaskPipeline
from attnlab.pipelines.image_classification import ImageClassificationPipeline
from attnlab.pipelines.loading import (
    MissingModelError, canonical_task, infer_task, load_for_task, load_tokenizer, missing_model_message,
    resolve_folder,
)
from attnlab.pipelines.text2text import Text2TextGenerationPipeline, TranslationPipeline
from attnlab.pipelines.text_classification import TextClassificationPipeline
from attnlab.pipelines.text_generation import TextGenerationPipeline

PIPELINES: dict[str, type[Pipeline]] = {
    "text-generation": TextGenerationPipeline,
    "text2text-generation": Text2TextGenerationPipeline,
    "translation": TranslationPipeline,
    "text-classification": TextClassificationPipeline,
    "fill-mask": FillMaskPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "image-classification": ImageClassificationPipeline,
}


def pipeline(
    task: str | None = None,
    model: str | Path | nn.Module | None = None,
    tokenizer: Any = None,
    *,
    device: str | int | torch.device | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **task_options: Any,
) -> Any:
    """A ready-to-call pipeline for ``task`` (see :data:`PIPELINES`; ``"sentiment-analysis"`` and
    ``"translation_xx_to_yy"`` are accepted too).

    Args:
        task: the task; ``None`` reads it from the model folder (``attnlab_task.json`` or the architecture).
        model: a local model folder (config.json + model.safetensors + tokenizer.json), or a model object.
            Nothing is downloaded: without a folder the error says how to make one (``attnlab train ...``).
        tokenizer: an attnlab :class:`~attnlab.data.Tokenizer` or a folder holding tokenizer.json
            (default: the model folder's).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``, an index (-1 = CPU), or None (CPU, or the model object's).
        batch_size: inputs run together per forward pass.
        task_options: options of the task's class: ``src_lang``, ``tgt_lang``, ``prefix`` (translation),
            ``pooling``, ``normalize`` (feature-extraction), ``generation_config`` (generating tasks).
    """
    if task is None:
        if model is None or isinstance(model, nn.Module):
            raise ValueError("pipeline() needs a task, e.g. pipeline('text-generation', model='runs/shakespeare')")
        task = infer_task(model)
    name, implied = canonical_task(task)
    options = {**implied, **task_options}
    cls = PIPELINES[name]
    if model is None:
        raise MissingModelError(missing_model_message(task))
    if isinstance(model, nn.Module):
        tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
        return cls(model, tok, device=device, batch_size=batch_size, **options)
    resolve_folder(model, task)  # a missing folder is reported under the task name the caller used
    loaded = load_for_task(name, model, device=resolve_device(device if device is not None else "cpu"))
    tok = loaded.tokenizer
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
    return cls(loaded.model, tok, device=device, batch_size=batch_size, model_dir=loaded.folder,
               hf_config=loaded.hf_config, **options)
