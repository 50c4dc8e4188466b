"""HF checkpoint interop: load HuggingFace-format directories into attnlab models and write them back.

Dimension key: D model width, V vocabulary, L layers.

    model = attnlab.from_pretrained("path/to/dir")        # config.json + model.safetensors (or shards)
    model.save_pretrained("out/dir")                       # HF transformers loads it with from_pretrained
    tok = attnlab.interop.load_tokenizer("path/to/dir")    # tokenizer.json via the `tokenizers` library

Layout of this package (see ``registry.py`` for how to add a family):

- ``errors.py``          :class:`CheckpointError`, the one error for every bad or unsafe checkpoint.
- ``safetensors_io.py``  a validating safetensors reader (header parsed and checked before any tensor
                         is made) and an atomic writer.
- ``keymap.py``          :class:`Rule` rows (our key <- HF keys, with a :class:`Transform`) and the
                         ``{i}`` expansion; transforms IDENTITY, TRANSPOSE, FUSE.
- ``registry.py``        :class:`FamilyAdapter` per family, registered by HF ``model_type``.
- ``api.py``             ``from_pretrained``, ``save_pretrained``, ``load_hf_state_dict``, ``to_hf_state_dict``.
- ``tokenizer.py``       a small wrapper over ``tokenizer.json`` (batch encode with padding and masks).
- ``mixin.py``           ``PretrainedMixin``: gives model classes ``save_pretrained``/``from_pretrained``.
- ``gpt2.py``, ``bert.py`` (BERT and DistilBERT), ...: one adapter per family.

Pickle checkpoints (``pytorch_model.bin``) are refused unless ``allow_pickle=True`` is passed, and
even then they are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from attnlab.interop.errors import CheckpointError

_LAZY = {
    "from_pretrained": "attnlab.interop.api",
    "save_pretrained": "attnlab.interop.api",
    "load_hf_state_dict": "attnlab.interop.api",
    "to_hf_state_dict": "attnlab.interop.api",
    "LoadReport": "attnlab.interop.api",
    "read_safetensors": "attnlab.interop.safetensors_io",
    "write_safetensors": "attnlab.interop.safetensors_io",
    "load_tokenizer": "attnlab.interop.tokenizer",
    "PretrainedTokenizer": "attnlab.interop.tokenizer",
    "FamilyAdapter": "attnlab.interop.registry",
    "Architecture": "attnlab.interop.registry",
    "register_adapter": "attnlab.interop.registry",
    "Rule": "attnlab.interop.keymap",
    "Transform": "attnlab.interop.keymap",
}


def __getattr__(name: str) -> Any:  # lazy: model modules import interop.mixin without cycles
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnlab.interop' has no attribute {name!r}")


__all__ = ["CheckpointError", *_LAZY]
