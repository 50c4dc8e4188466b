"""Learning-rate schedules: pure functions of the optimizer step, so resuming needs only the step.

Dimension key: none (scalars only).

Steps are 1-based: ``schedule(s)`` is the learning rate of the s-th parameter update.

- ``"noam"`` (Vaswani et al. 2017, eq. 3): ``factor * D**-0.5 * min(s**-0.5, s * warmup**-1.5)`` —
  linear warmup, then inverse square root; the peak is set by the model width D, not by ``lr``.
- ``"inverse_sqrt"``: the same shape with an explicit peak: ``lr * min(s / warmup, sqrt(warmup / s))``.
- ``"cosine"``: linear warmup to ``lr``, then half a cosine down to ``min_lr`` at ``total_steps``
  (held there afterwards).
- ``"constant"``: linear warmup to ``lr``, then constant.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

SCHEDULES = ("noam", "inverse_sqrt", "cosine", "constant")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A named schedule; ``schedule(step)`` -> learning rate. JSON-serializable via :meth:`to_dict`."""

    name: str
    lr: float = 1e-3
    warmup_steps: int = 0
    total_steps: int | None = None
    min_lr: float = 0.0
    d_model: int | None = None
    factor: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.name!r}; choose one of {SCHEDULES}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.name in ("noam", "inverse_sqrt") and self.warmup_steps < 1:
            raise ValueError(f"schedule {self.name!r} needs warmup_steps >= 1 (the paper uses 4000)")
        if self.name == "noam" and (self.d_model is None or self.d_model < 1):
            raise ValueError("schedule 'noam' needs d_model (the model width, e.g. 512)")
        if self.name == "cosine":
            if self.total_steps is None or self.total_steps <= self.warmup_steps:
                raise ValueError(
                    f"schedule 'cosine' needs total_steps > warmup_steps, got total_steps={self.total_steps}, "
                    f"warmup_steps={self.warmup_steps}"
                )
            if not 0.0 <= self.min_lr <= self.lr:
                raise ValueError(f"min_lr must lie in [0, lr={self.lr}], got {self.min_lr}")

    def __call__(self, step: int) -> float:
        if step < 1:
            raise ValueError(f"schedule steps are 1-based, got {step}")
        w = self.warmup_steps
        if self.name == "noam":
            return self.factor * self.d_model**-0.5 * min(step**-0.5, step * w**-1.5)
        if self.name == "inverse_sqrt":
            return self.lr * min(step / w, math.sqrt(w / step))
        if step <= w:
            return self.lr * step / w
        if self.name == "constant":
            return self.lr
        progress = min(1.0, (step - w) / (self.total_steps - w))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        return cls(**data)


def noam(d_model: int, warmup_steps: int = 4000, factor: float = 1.0) -> Schedule:
    """The paper's schedule: ``factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)``."""
    return Schedule("noam", warmup_steps=warmup_steps, d_model=d_model, factor=factor)


def inverse_sqrt(lr: float, warmup_steps: int) -> Schedule:
    return Schedule("inverse_sqrt", lr=lr, warmup_steps=warmup_steps)


def cosine(lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0) -> Schedule:
    return Schedule("cosine", lr=lr, warmup_steps=warmup_steps, total_steps=total_steps, min_lr=min_lr)


def constant(lr: float, warmup_steps: int = 0) -> Schedule:
    return Schedule("constant", lr=lr, warmup_steps=warmup_steps)
