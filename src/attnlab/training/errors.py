"""Typed errors raised by the training engine.

Dimension key: none (no tensors here).

- :class:`ResumeError` (an :class:`attnlab.CheckpointError`, hence a ``ValueError``): a checkpoint
  cannot continue this run (changed model, batch size, world size, task) or is damaged.
- :class:`CheckpointSaveError` (``OSError``): writing a checkpoint failed (read-only or full directory,
  a path whose parent is a file); the previous checkpoints are left as they were.
- :class:`NonFiniteError` (``FloatingPointError``): a NaN/inf loss or gradient under
  ``nan_policy="error"``; names the step and the last good checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from attnlab.interop.errors import CheckpointError


class ResumeError(CheckpointError):
    """A checkpoint that cannot be resumed into the current run."""


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed; ``path`` is the checkpoint that was being written."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        self.path = Path(path)
        self.cause = cause
        errno_ = getattr(cause, "errno", None)
        super().__init__(
            errno_,
            f"could not write checkpoint {self.path}: {cause}; older checkpoints are untouched — free disk "
            "space, fix the directory's permissions, or choose another out_dir",
        )

    def __str__(self) -> str:
        return str(self.args[1])


class NonFiniteError(FloatingPointError):
    """A NaN or infinite loss/gradient; ``step`` is the 1-based optimizer step that produced it."""

    def __init__(self, step: int, what: str, last_checkpoint: Path | None) -> None:
        self.step = step
        self.what = what
        self.last_checkpoint = last_checkpoint
        where = f"the last good checkpoint {last_checkpoint} is untouched" if last_checkpoint else "no checkpoint written"
        super().__init__(
            f"non-finite {what} at step {step}; training stopped ({where}). Lower the learning rate, enable "
            "grad_clip, check the data, or pass nan_policy='skip' to skip such steps"
        )
