"""``PretrainedMixin``: ``save_pretrained`` / ``from_pretrained`` methods for model classes.

Dimension key: none (delegates to :mod:`attnlab.interop.api`).

Model files import this module only; the heavy interop code is imported when a method is called,
so there is no import cycle between ``attnlab.models`` and ``attnlab.interop``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PretrainedMixin:
    """Adds HF-format checkpoint I/O to an ``nn.Module`` whose family has a registered adapter."""

    def save_pretrained(self, path: str | Path, **kwargs: Any) -> Path:
        """Write config.json + model.safetensors that HF transformers (and attnlab) load back."""
        from attnlab.interop.api import save_pretrained

        return save_pretrained(self, path, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> Any:
        """Load an HF-format directory into this class (its head decides which weights are needed)."""
        from attnlab.interop.api import from_pretrained

        return from_pretrained(path, model_class=cls, **kwargs)
