"""Training engine: Trainer, tasks, schedules, losses, resumable data, atomic checkpoints, torchrun DDP/FSDP.

Dimension key: B batch, T length, V vocabulary, W world size.

    from attnlab.training import Trainer, LanguageModelingTask, ResumableLoader
    trainer = Trainer(model, LanguageModelingTask(), ResumableLoader(dataset, batch_size=32), max_steps=1000)
    trainer.fit()

Names are imported lazily (``import attnlab.training`` does not import the trainer's dependencies).
See docs/training.md for the user guide.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Trainer": "attnlab.training.trainer",
    "TrainResult": "attnlab.training.trainer",
    "seed_everything": "attnlab.training.trainer",
    "TrainConfig": "attnlab.training.config",
    "Task": "attnlab.training.tasks",
    "TaskOutput": "attnlab.training.tasks",
    "LanguageModelingTask": "attnlab.training.tasks",
    "Seq2SeqTask": "attnlab.training.tasks",
    "ClassificationTask": "attnlab.training.tasks",
    "make_task": "attnlab.training.tasks",
    "ResumableBatches": "attnlab.training.data",
    "ResumableLoader": "attnlab.training.data",
    "Schedule": "attnlab.training.schedules",
    "noam": "attnlab.training.schedules",
    "inverse_sqrt": "attnlab.training.schedules",
    "cosine": "attnlab.training.schedules",
    "constant": "attnlab.training.schedules",
    "label_smoothed_cross_entropy": "attnlab.training.losses",
    "param_groups": "attnlab.training.optim",
    "build_adamw": "attnlab.training.optim",
    "CheckpointDir": "attnlab.training.checkpoint",
    "read_checkpoint": "attnlab.training.checkpoint",
    "ResumeError": "attnlab.training.errors",
    "CheckpointSaveError": "attnlab.training.errors",
    "NonFiniteError": "attnlab.training.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnlab.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "CheckpointDir",
    "CheckpointSaveError",
    "ClassificationTask",
    "LanguageModelingTask",
    "NonFiniteError",
    "ResumableBatches",
    "ResumableLoader",
    "ResumeError",
    "Schedule",
    "Seq2SeqTask",
    "Task",
    "TaskOutput",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_adamw",
    "constant",
    "cosine",
    "inverse_sqrt",
    "label_smoothed_cross_entropy",
    "make_task",
    "noam",
    "param_groups",
    "read_checkpoint",
    "seed_everything",
]
