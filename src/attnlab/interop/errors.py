"""The one error type for bad checkpoints.

Dimension key: none (no tensors are shaped here).

Every malformed, unsafe or mismatched checkpoint — a truncated or hostile safetensors file, a pickle
file refused by default, a missing config field, missing or unexpected weights, a shape mismatch —
raises :class:`CheckpointError`. It derives from ``ValueError`` so command-line tools report it as a
user error in one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (or written) safely; the message names the file and the fix."""


@contextlib.contextmanager
def config_errors(family: str) -> Iterator[None]:
    """Turn a missing field (KeyError) or a rejected value (TypeError/ValueError) met while reading an
    HF config.json into one CheckpointError naming the family and the field."""
    try:
        yield
    except KeyError as e:
        raise CheckpointError(f"{family} config.json lacks the field {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{family} config.json is inconsistent: {e}") from None
