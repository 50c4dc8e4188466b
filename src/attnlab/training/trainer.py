"""The Trainer: one training loop for language modelling, translation and classification.

Dimension key: B batch, T length, W world size (processes).

    trainer = Trainer(model, LanguageModelingTask(), ResumableLoader(data, batch_size=32), max_steps=1000)
    result = trainer.fit()          # resumes from out_dir/checkpoints when a complete checkpoint exists

One optimizer step: ``grad_accum`` micro-batches, each ``task(model, batch) -> (loss_sum, n_tokens,
metrics)`` under autocast, backward of ``loss_sum / n_est`` (``n_est`` the expected token count, so
fp16/bf16 gradients stay in range); then the gradients are rescaled by ``n_est / N`` with N the exact
token total over micro-batches and processes — the result equals one big batch's mean-loss gradient,
for DDP and FSDP too. The global L2 norm is measured before clipping (and reported), then one multiply
applies the rescale and the clip. A NaN/inf loss or gradient stops training with
:class:`NonFiniteError` (``nan_policy="error"``) before anything is saved, or skips the update leaving
parameters and optimizer state bit-identical (``nan_policy="skip"``, counted in ``skipped_steps``).
With fp16 the GradScaler's own overflow skips are expected and counted separately.

The learning rate is ``schedule(step)`` for the step-th update (1-based). Checkpoints (see
:mod:`attnlab.training.checkpoint`) hold everything needed to continue bit-identically on CPU: model,
optimizer, step, tokens seen, data position, scaler and every RNG stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_state_dict,
)

import attnlab
from attnlab.training import distributed as D
from attnlab.training.checkpoint import (
    FORMAT,
    CheckpointDir,
    LoadedCheckpoint,
    capture_rng,
    find_aliases,
    flatten_optimizer,
    model_fingerprint,
    read_checkpoint,
    restore_rng,
)
from attnlab.training.config import RESUME_FREE_FIELDS, TrainConfig
from attnlab.training.data import ResumableBatches
from attnlab.training.errors import NonFiniteError, ResumeError
from attnlab.training.optim import build_adamw
from attnlab.training.schedules import Schedule, constant, cosine, inverse_sqrt, noam
from attnlab.training.tasks import Task

Callback = Callable[["Trainer", dict[str, float]], None]


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@dataclasses.dataclass
class TrainResult:
    step: int
    tokens_seen: int
    skipped_steps: int
    train_loss: float | None  # the last step's mean loss
    eval: dict[str, float] | None  # the last evaluation
    checkpoint: Path | None  # the last checkpoint written
    history: list[dict[str, Any]]


class Trainer:
    """Train ``model`` on ``task`` over ``train_data``; single process, or DDP/FSDP under torchrun.

    Args:
        model: an ``nn.Module`` (moved to the device; sharded in place under FSDP).
        task: ``task(model, batch) -> TaskOutput`` (:mod:`attnlab.training.tasks`).
        train_data: a :class:`ResumableBatches` stream (e.g. :class:`ResumableLoader`), batches as dicts.
        config: a :class:`TrainConfig`; keyword ``overrides`` replace its fields.
        eval_data: any iterable of batches (re-iterated at each evaluation), or None.
        lr_schedule: a :class:`Schedule` overriding the one the config describes.
        callbacks: ``f(trainer, record)`` called on every process after every step.

    The model is resumed (``config.resume``) and seeded in the constructor; :meth:`fit` trains to
    ``max_steps``, :meth:`evaluate` runs the evaluation loop, :meth:`save_checkpoint` saves now.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        train_data: ResumableBatches,
        config: TrainConfig | None = None,
        *,
        eval_data: Iterable[Any] | None = None,
        lr_schedule: Schedule | None = None,
        callbacks: Sequence[Callback] = (),
        **overrides: Any,
    ) -> None:
        self.config = c = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
        _check_stream(train_data)
        self.task, self.train_data, self.eval_data = task, train_data, eval_data
        self.callbacks = list(callbacks)
        self.env, self.device = self._setup_device()
        if hasattr(train_data, "set_shard"):
            train_data.set_shard(self.env.rank, self.env.world_size)
        self.model = model.to(self.device)
        self._aliases = find_aliases(self.model)
        self._module = D.wrap(self.model, self.env, self.device)
        self._forward = self._module
        self._run_task: Callable[[Any], Any] = self._task_call
        if c.compile:  # single process: compile model + loss together (fused softmax-CE); else the model
            if self.env.distributed:
                self._forward = torch.compile(self._module, mode=c.compile_mode)
            else:
                self._run_task = torch.compile(self._task_call, mode=c.compile_mode)
        self.optimizer = build_adamw(
            self.model, lr=c.lr, weight_decay=c.weight_decay, betas=c.betas, eps=c.eps, fused=c.fused
        )
        self._params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.schedule = lr_schedule or self._default_schedule()
        self.scaler = torch.amp.GradScaler(self.device.type) if c.precision == "fp16" else None
        self.checkpoints = CheckpointDir(Path(c.out_dir) / "checkpoints", keep_last=c.keep_last, rank=self.env.rank,
                                         agree=self._all_agree)
        self.step = self.optimizer_steps = self.skipped_steps = self.scaler_skips = self.tokens_seen = 0
        self.history: list[dict[str, Any]] = []
        self.last_checkpoint: Path | None = None
        self._saved_step: int | None = None
        self._batches: Iterator[Any] | None = None
        self._last_eval: dict[str, float] | None = None
        if not self._maybe_resume():
            seed_everything(c.seed + self.env.rank)

    # ------------------------------------------------------------------ setup

    def _setup_device(self) -> tuple[D.DistEnv, torch.device]:
        c = self.config
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = D.default_device(local) if c.device == "auto" else torch.device(c.device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            torch.backends.cuda.matmul.allow_tf32 = c.tf32
            torch.backends.cudnn.allow_tf32 = c.tf32
        if c.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("precision='bf16' needs a GPU with bfloat16 support; use 'fp16' or 'fp32'")
        return D.setup(c.distributed, device), device

    def _default_schedule(self) -> Schedule:
        c = self.config
        if c.schedule == "noam":
            d_model = getattr(getattr(self.model, "config", None), "d_model", None)
            if d_model is None:
                raise ValueError("schedule 'noam' needs the model width: the model has no config.d_model; pass "
                                 "lr_schedule=attnlab.training.noam(d_model=..., warmup_steps=...)")
            return noam(d_model, c.warmup_steps, factor=c.noam_factor)
        if c.schedule == "inverse_sqrt":
            return inverse_sqrt(c.lr, c.warmup_steps)
        if c.schedule == "cosine":
            return cosine(c.lr, c.max_steps, warmup_steps=c.warmup_steps, min_lr=c.min_lr)
        return constant(c.lr, warmup_steps=c.warmup_steps)

    def _all_agree(self, ok: bool) -> bool:
        return D.all_agree(ok, self.env, self.device)

    @property
    def is_main(self) -> bool:
        return self.env.is_main

    # ------------------------------------------------------------------ one step

    def _task_call(self, batch: Any) -> Any:
        return self.task(self._forward, batch)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _next_batch(self) -> Any:
        for _ in range(2):
            if self._batches is None:
                self._batches = iter(self.train_data)
            try:
                return next(self._batches)
            except StopIteration:
                self._batches = None
        raise ValueError("the training data yields no batches (an empty epoch)")

    def _forward_backward(self, micro: list[Any]) -> tuple[Tensor, Tensor, list[str]]:
        """Backward over the micro-batches; returns local sums [loss, n, metrics...], n_est, metric names."""
        sums, n_est, names = None, None, []
        for i, batch in enumerate(micro):
            with D.gradient_sync(self._module, self.env, i == len(micro) - 1):
                with self._autocast():
                    out = self._run_task(to_device(batch, self.device))
                if n_est is None:  # the same on every process: mean first-micro-batch count x micro-batches
                    n0 = D.all_reduce_sum(out.n_tokens.detach().float().reshape(1), self.env)
                    n_est = (n0[0] / self.env.world_size).clamp(min=1.0) * len(micro)
                    names = sorted(out.metrics)
                loss = out.loss.float() / n_est
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            row = torch.stack([out.loss.detach().float(), out.n_tokens.detach().float(),
                               *[out.metrics[k].detach().float() for k in names]])  # (2 + metrics,)
            sums = row if sums is None else sums + row
        return sums, n_est, names

    def _grad_norm(self) -> Tensor:
        grads = [p.grad for p in self._params if p.grad is not None]
        if not grads:
            raise ValueError("no parameter received a gradient: does the task's loss depend on the model?")
        norm = torch.nn.utils.get_total_norm(grads, 2.0, error_if_nonfinite=False)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def train_step(self) -> dict[str, float]:
        """One optimizer step (``grad_accum`` micro-batches); returns its record (loss, grad_norm, lr, ...).

        :meth:`fit` calls this in a loop and adds logging, evaluation and checkpoints; call it directly
        for a custom loop or a benchmark."""
        c, step = self.config, self.step + 1
        micro = [self._next_batch() for _ in range(c.grad_accum)]
        sums, n_est, names = self._forward_backward(micro)
        totals = D.all_reduce_sum(sums, self.env)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        stats = torch.cat([totals, n_est.reshape(1), self._grad_norm().float().reshape(1).to(totals.device)])
        loss_sum, n_total, *metric_sums, n_est_f, raw_norm = stats.tolist()  # the one host sync per step
        factor = self.env.world_size * n_est_f / max(n_total, 1.0)  # undo the averaging and the n_est guess
        norm = raw_norm * factor
        record = {"loss": loss_sum / max(n_total, 1.0), "grad_norm": norm, "lr": self.schedule(step)}
        record.update({k: v / max(n_total, 1.0) for k, v in zip(names, metric_sums)})
        record.update(_summarize(self.task, record))
        self._apply_update(step, loss_sum, norm, factor, record["lr"])
        self.step, self.tokens_seen = step, self.tokens_seen + int(n_total)
        record.update(tokens_seen=float(self.tokens_seen), skipped_steps=float(self.skipped_steps))
        return record

    def _apply_update(self, step: int, loss_sum: float, norm: float, factor: float, lr: float) -> None:
        """Clip, step (or skip / stop on non-finite values), clear the gradients."""
        if not math.isfinite(loss_sum) or (self.scaler is None and not math.isfinite(norm)):
            what = "loss" if not math.isfinite(loss_sum) else "gradient norm"
            self.optimizer.zero_grad(set_to_none=True)
            if self.config.nan_policy == "error":
                raise NonFiniteError(step, what, self.last_checkpoint)
            if self.scaler is not None:
                self.scaler.update()  # closes this step's unscale_; parameters and optimizer untouched
            self.skipped_steps += 1
            return
        clip = self.config.grad_clip
        coef = factor * (min(1.0, clip / (norm + 1e-6)) if clip is not None and math.isfinite(norm) else 1.0)
        grads = [p.grad for p in self._params if p.grad is not None]
        if coef != 1.0:
            torch._foreach_mul_(grads, coef)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scaler_skips += int(self.scaler.get_scale() < scale)
        else:
            self.optimizer.step()
        self.optimizer_steps += 1
        self.optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> TrainResult:
        """Train until ``config.max_steps``; save every ``save_every`` steps and at the end."""
        from tqdm.auto import tqdm

        from attnlab.training.metrics import MetricsWriter

        c = self.config
        self._module.train()  # models from from_pretrained arrive in eval mode: dropout must be on to train
        writer = MetricsWriter(c.out_dir, resume_step=self.step, tensorboard=c.tensorboard, enabled=self.is_main)
        bar = tqdm(total=c.max_steps, initial=self.step, disable=not (c.progress and self.is_main),
                   unit="step", dynamic_ncols=True)
        record = None
        clock = _Throughput(self.tokens_seen)
        try:
            while self.step < c.max_steps:
                record = self.train_step()
                record["tokens_per_s"] = clock.rate(self.tokens_seen) if self.step % c.log_every == 0 else math.nan
                self._log(writer, bar, record)
                if c.eval_every and self.eval_data is not None and self.step % c.eval_every == 0:
                    self._log_eval(writer)
                if c.save_every and self.step % c.save_every == 0:
                    self.save_checkpoint()
                for callback in self.callbacks:
                    callback(self, record)
            if self.eval_data is not None and (not c.eval_every or self.step % c.eval_every):
                self._log_eval(writer)
            if self._saved_step != self.step:
                self.save_checkpoint()
        finally:
            bar.close()
            writer.close()
        loss = record["loss"] if record else None
        return TrainResult(self.step, self.tokens_seen, self.skipped_steps, loss, self._last_eval,
                           self.last_checkpoint, self.history)

    def _log(self, writer: Any, bar: Any, record: dict[str, float]) -> None:
        bar.update(1)
        if self.step % self.config.log_every:
            return
        unit = getattr(self.task, "unit", "tok")
        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                        **{f"{unit}/s": f"{record['tokens_per_s']:,.0f}"}, refresh=False)
        writer.write(self.step, "train", record)
        self.history.append({"step": self.step, "split": "train", **record})

    def _log_eval(self, writer: Any) -> None:
        result = self.evaluate()
        writer.write(self.step, "eval", result)
        self.history.append({"step": self.step, "split": "eval", **result})

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, data: Iterable[Any] | None = None, *, max_batches: int | None = None) -> dict[str, float]:
        """Mean loss and metrics over ``data`` (default: ``eval_data``), split across processes.

        Processes take turns over the batches (rank r evaluates batches r, r + W, ...) and the sums are
        all-reduced, so the result does not depend on the number of processes.
        """
        data = self.eval_data if data is None else data
        if data is None:
            raise ValueError("no evaluation data: pass eval_data to the Trainer or data to evaluate()")
        max_batches = self.config.eval_batches if max_batches is None else max_batches
        self._module.eval()
        try:
            sums, names = self._eval_sums(data, max_batches)
        finally:
            self._module.train()
        if sums is None:
            raise ValueError("the evaluation data yielded no batches")
        loss_sum, n, *metric_sums = D.all_reduce_sum(sums, self.env).tolist()
        result = {"loss": loss_sum / max(n, 1.0), **{k: v / max(n, 1.0) for k, v in zip(names, metric_sums)}}
        result.update(_summarize(self.task, result))
        self._last_eval = result
        return result

    def _eval_sums(self, data: Iterable[Any], max_batches: int | None) -> tuple[Tensor | None, list[str]]:
        sums, names, group = None, [], []
        world = self.env.world_size
        for i, batch in enumerate(data):
            if max_batches is not None and i >= max_batches:
                break
            group.append(batch)
            if len(group) < world:
                continue
            sums, names = self._eval_group(group, sums)
            group = []
        if group:  # a last, short round: processes without a batch repeat one with weight 0
            sums, names = self._eval_group(group, sums)
        return sums, names

    def _eval_group(self, group: list[Any], sums: Tensor | None) -> tuple[Tensor, list[str]]:
        rank = self.env.rank
        batch, weight = (group[rank], 1.0) if rank < len(group) else (group[0], 0.0)
        with self._autocast():
            out = self._run_task(to_device(batch, self.device))
        names = sorted(out.metrics)
        row = torch.stack([out.loss.float(), out.n_tokens.float(), *[out.metrics[k].float() for k in names]])
        row = row * weight  # (2 + metrics,)
        return (row if sums is None else sums + row), names

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        """Save the full training state now (a collective: every process must call it)."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state, optim_state = get_state_dict(self.model, self.optimizer, options=options)
        state: dict[str, Any] = {}
        opt_tensors: dict[str, Tensor] = {}
        if self.is_main:
            for alias in self._aliases:
                model_state.pop(alias, None)
            opt_tensors, opt_json = flatten_optimizer(optim_state)
            state = self._state_json(model_state, opt_json)
        self.last_checkpoint = self.checkpoints.save(
            self.step, model=model_state, optimizer=opt_tensors, state=state, rng=capture_rng()
        )
        self._saved_step = self.step
        return self.last_checkpoint

    def _run_description(self) -> dict[str, Any]:
        """What must match for a checkpoint to continue this run."""
        model_config = getattr(self.model, "config", None)
        return {
            "task": type(self.task).__name__,
            "batch_spec": dict(getattr(self.train_data, "batch_spec", {})),
            "grad_accum": self.config.grad_accum,
            "world_size": self.env.world_size,
            "model_config": _jsonable(model_config.to_dict()) if hasattr(model_config, "to_dict") else None,
        }

    def _state_json(self, model_state: dict[str, Tensor], opt_json: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "attnlab_version": attnlab.__version__,
            "saved_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "step": self.step,
            "optimizer_steps": self.optimizer_steps,
            "skipped_steps": self.skipped_steps,
            "scaler_skips": self.scaler_skips,
            "tokens_seen": self.tokens_seen,
            "data": self.train_data.state_dict(),
            "run": self._run_description(),
            "model_fingerprint": model_fingerprint(model_state),
            "aliases": self._aliases,
            "optimizer": opt_json,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "schedule": self.schedule.to_dict(),
            "config": self.config.to_dict(),
        }

    def _maybe_resume(self) -> bool:
        mode = self.config.resume
        if mode in ("auto", "never", "must"):
            complete = self.checkpoints.complete()
            if mode == "never" and complete:
                raise ResumeError(
                    f"{self.checkpoints.root} already holds checkpoints (newest: step {complete[0][0]}); resume "
                    "them (resume='auto'), delete them, or choose another out_dir"
                )
            ckpt = self.checkpoints.load_latest() if mode != "never" else None
            if ckpt is None and mode == "must":
                raise ResumeError(f"resume='must' but {self.checkpoints.root} holds no complete checkpoint")
        else:
            ckpt = read_checkpoint(mode, self.env.rank)
        if ckpt is None:
            return False
        self.load_checkpoint(ckpt)
        return True

    def load_checkpoint(self, ckpt: LoadedCheckpoint | str | Path) -> None:
        """Restore the full training state from a checkpoint (directory or :class:`LoadedCheckpoint`)."""
        if not isinstance(ckpt, LoadedCheckpoint):
            ckpt = read_checkpoint(ckpt, self.env.rank)
        s = ckpt.state
        self._check_compatible(ckpt)
        set_state_dict(self.model, self.optimizer, model_state_dict=ckpt.model, optim_state_dict=ckpt.optimizer,
                       options=StateDictOptions(full_state_dict=True))
        self.step, self.optimizer_steps = s["step"], s["optimizer_steps"]
        self.skipped_steps, self.scaler_skips, self.tokens_seen = s["skipped_steps"], s["scaler_skips"], s["tokens_seen"]
        self.train_data.load_state_dict(s["data"])
        self._batches = None
        if self.scaler is not None and s["scaler"] is not None:
            self.scaler.load_state_dict(s["scaler"])
        if ckpt.rng is None:
            raise ResumeError(f"{ckpt.path} has no RNG state for rank {self.env.rank}")
        restore_rng(*ckpt.rng)
        self.last_checkpoint, self._saved_step = ckpt.path, self.step

    def _check_compatible(self, ckpt: LoadedCheckpoint) -> None:
        saved, now = ckpt.state["run"], self._run_description()
        fp_now = model_fingerprint({k: v for k, v in self.model.state_dict().items() if k not in self._aliases})
        diff = _fingerprint_diff(ckpt.state["model_fingerprint"], fp_now)
        config_diff = _dict_diff(saved["model_config"] or {}, now["model_config"] or {})
        if diff or config_diff:
            detail = "; ".join(x for x in (f"config {config_diff}" if config_diff else "", diff) if x)
            raise ResumeError(f"{ckpt.path} was saved from a different model ({detail}); resume with the same "
                              "model, or start a new run in another out_dir")
        for key, what in (("batch_spec", "batch size"), ("grad_accum", "gradient accumulation"),
                          ("world_size", "number of processes"), ("task", "task")):
            if saved[key] != now[key]:
                raise ResumeError(f"{ckpt.path} was saved with {what} {saved[key]}, this run has {now[key]}; "
                                  f"resume with the original {what}, or start a new run in another out_dir")
        changed = _dict_diff({k: v for k, v in ckpt.state["config"].items() if k not in RESUME_FREE_FIELDS},
                             {k: v for k, v in _jsonable(self.config.to_dict()).items() if k not in RESUME_FREE_FIELDS})
        if changed:
            warnings.warn(f"resuming {ckpt.path} with a changed training config: {changed}")


class _Throughput:
    """Tokens per second between successive calls."""

    def __init__(self, tokens: int) -> None:
        self.tokens, self.time = tokens, time.perf_counter()

    def rate(self, tokens: int) -> float:
        now = time.perf_counter()
        rate = (tokens - self.tokens) / max(now - self.time, 1e-9)
        self.tokens, self.time = tokens, now
        return rate


def _check_stream(data: Any) -> None:
    missing = [m for m in ("state_dict", "load_state_dict", "__iter__") if not hasattr(data, m)]
    if missing:
        raise TypeError(
            f"train_data must be resumable (state_dict/load_state_dict/__iter__), {type(data).__name__} lacks "
            f"{missing}; wrap a map-style dataset: ResumableLoader(dataset, batch_size=..., collate_fn=...)"
        )


def _summarize(task: Any, means: dict[str, float]) -> dict[str, float]:
    summarize = getattr(task, "summarize", None)
    return summarize(means) if summarize is not None else {}


def _jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons with saved state."""
    return json.loads(json.dumps(obj))


def _fingerprint_diff(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """Weights missing, unexpected or changed in shape/dtype (a few of each)."""
    missing, extra = sorted(set(saved) - set(now)), sorted(set(now) - set(saved))
    changed = [f"{k} {tuple(saved[k][0])}/{saved[k][1]} -> {tuple(now[k][0])}/{now[k][1]}"
               for k in sorted(set(saved) & set(now)) if saved[k] != now[k]]
    parts = [f"{label} weights: {', '.join(items[:3])}{f' (+{len(items) - 3} more)' if len(items) > 3 else ''}"
             for label, items in (("missing", missing), ("unexpected", extra), ("changed", changed)) if items]
    return "; ".join(parts)


def _dict_diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys)
