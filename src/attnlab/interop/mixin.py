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

    def run_with_capture(self, *inputs: Any, **kwargs: Any) -> Any:
        """Run the model and capture attention patterns / residual streams for chosen layers and heads.

        See :func:`attnlab.interp.run_with_capture`; returns ``(output, capture)``.
        """
        from attnlab.interp.capture import run_with_capture

        return run_with_capture(self, *inputs, **kwargs)  # type: ignore[arg-type]
