"""attnlab: the Transformer family from scratch — readable, fast, and checked against references.

Top-level names are imported lazily, so ``import attnlab`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "attention": "attnlab.core.attention",
    "from_name": "attnlab.models.config",
    "from_pretrained": "attnlab.interop",
    "save_pretrained": "attnlab.interop",
    "CheckpointError": "attnlab.interop",
    "pipeline": "attnlab.pipelines",
    "generate": "attnlab.generation",
    "Trainer": "attnlab.training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
