"""Training configuration: one typed, JSON-serializable dataclass.

Dimension key: none (scalars only).

Every field has a default; ``TrainConfig(max_steps=200, lr=1e-3)`` or ``Trainer(..., max_steps=200)``.
Batch size is not here: it belongs to the data stream (``ResumableLoader(batch_size=...)``, the global
batch of one micro-step); the effective batch of one optimizer step is that times ``grad_accum``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from attnlab.training.distributed import STRATEGIES
from attnlab.training.schedules import SCHEDULES

PRECISIONS = ("fp32", "bf16", "fp16")
NAN_POLICIES = ("error", "skip")
RESUME_MODES = ("auto", "never", "must")

# fields that may differ between a run and its resumption without changing the computation
RESUME_FREE_FIELDS = frozenset(
    {"out_dir", "max_steps", "log_every", "eval_every", "eval_batches", "save_every", "keep_last", "resume",
     "progress", "tensorboard", "compile", "compile_mode", "device", "distributed"}
)


@dataclasses.dataclass
class TrainConfig:
    """How to train; see docs/training.md for a guide to every field."""

    out_dir: str = "runs/train"  # checkpoints/, metrics.csv, tensorboard/
    max_steps: int = 1000  # optimizer steps (each of grad_accum micro-batches)
    # optimization: AdamW with decay groups (no decay on norms, biases, embeddings)
    lr: float = 3e-4  # peak learning rate (ignored by schedule "noam", whose peak follows d_model)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    fused: bool | None = None  # fused AdamW kernel; None: on when every parameter is on CUDA
    schedule: str = "cosine"  # noam | inverse_sqrt | cosine | constant
    warmup_steps: int = 0
    min_lr: float = 0.0  # cosine floor
    noam_factor: float = 1.0  # noam: lr = factor * d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)
    grad_clip: float | None = 1.0  # max global L2 norm (None: no clipping; the norm is still reported)
    grad_accum: int = 1  # micro-batches per optimizer step
    # numerics and speed
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast + GradScaler)
    compile: bool = False  # torch.compile the model (with the loss, in a single process)
    compile_mode: str | None = None  # torch.compile mode: None (default), "max-autotune", "reduce-overhead", ...
    tf32: bool = True  # TF32 matmuls on CUDA
    nan_policy: str = "error"  # error: stop at a NaN/inf loss or gradient; skip: skip that update, count it
    # bookkeeping
    seed: int = 0
    device: str = "auto"  # auto: cuda:LOCAL_RANK when available, else cpu
    distributed: str = "auto"  # auto (ddp under torchrun) | none | ddp | fsdp
    log_every: int = 10
    eval_every: int = 0  # 0: evaluate only at the end (when eval data is given)
    eval_batches: int | None = None  # cap on evaluation batches (None: the whole eval set)
    save_every: int = 0  # 0: save only at the end
    keep_last: int = 2  # complete checkpoints kept (>= 2)
    resume: str = "auto"  # auto: newest complete checkpoint if any | never | must | a checkpoint directory
    progress: bool = True  # tqdm progress bar (main process only)
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        choices = {"schedule": SCHEDULES, "precision": PRECISIONS, "nan_policy": NAN_POLICIES,
                   "distributed": STRATEGIES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("max_steps", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.keep_last < 2:
            raise ValueError(f"keep_last must be >= 2 (a fallback if the newest checkpoint is damaged), got {self.keep_last}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(names)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
