"""The one error type for bad checkpoints.

Dimension key: none (no tensors are shaped here).

Every malformed, unsafe or mismatched checkpoint — a truncated or hostile safetensors file, a pickle
file refused by default, a missing config field, missing or unexpected weights, a shape mismatch —
raises :class:`CheckpointError`. It derives from ``ValueError`` so command-line tools report it as a
user error in one line.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (or written) safely; the message names the file and the fix."""
