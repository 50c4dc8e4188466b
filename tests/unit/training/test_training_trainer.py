"""The Trainer: gradient arithmetic, clipping, NaN policy, resume checks, precisions, logging, tasks.

Dimension key: B batch, T length, V vocabulary, C classes.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.training import (
    ClassificationTask,
    LanguageModelingTask,
    NonFiniteError,
    ResumableLoader,
    ResumeError,
    Seq2SeqTask,
    TrainConfig,
    Trainer,
    noam,
)
from attnlab.training.tasks import TaskOutput


def _lm_trainer(model, items, tmp_path: Path, quiet: dict, *, batch_size: int = 8, **kw) -> Trainer:
    loader = ResumableLoader(items, batch_size=batch_size, seed=0, shuffle=False)
    return Trainer(model, LanguageModelingTask(), loader, out_dir=str(tmp_path), **{**quiet, **kw})


def test_one_step_matches_manual_adamw_with_clipping(tiny_gpt, lm_items, tmp_path, quiet) -> None:
    model = tiny_gpt()
    reference = copy.deepcopy(model)
    trainer = _lm_trainer(model, lm_items, tmp_path, quiet, max_steps=1, lr=1e-2, weight_decay=0.1,
                          grad_clip=0.05, schedule="constant")
    record = trainer.train_step()
    ids = torch.stack([it["ids"] for it in lm_items[:8]])  # (B, T)
    logits = reference(ids)  # (B, T, V)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, 128), ids[:, 1:].reshape(-1))
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.05)
    assert record["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert record["grad_norm"] == pytest.approx(norm.item(), rel=1e-5) and norm > 0.05  # the pre-clip norm
    exempt = [p.ndim < 2 or "embed" in n or n.startswith("pos.") for n, p in reference.named_parameters()]
    params = [p for _, p in reference.named_parameters()]
    opt = torch.optim.AdamW(
        [{"params": [p for p, e in zip(params, exempt) if not e], "weight_decay": 0.1},
         {"params": [p for p, e in zip(params, exempt) if e], "weight_decay": 0.0}], lr=1e-2, betas=(0.9, 0.95))
    opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def _ragged_items() -> list[dict[str, torch.Tensor]]:
    """Sequences of different lengths, right-padded, so micro-batches hold different token counts."""
    g = torch.Generator().manual_seed(3)
    items = []
    for i in range(16):
        n = 4 + (i * 5) % 9
        ids = torch.zeros(12, dtype=torch.long)
        ids[:n] = torch.randint(1, 128, (n,), generator=g)
        labels = torch.full((12,), -100)
        labels[: n - 1] = ids[1:n]
        items.append({"ids": ids, "labels": labels, "attention_mask": torch.arange(12) < n})
    return items


def test_accumulation_equals_one_big_batch(tiny_gpt, tmp_path, quiet) -> None:
    items = _ragged_items()
    curves = []
    for batch_size, accum in ((8, 1), (2, 4)):
        model = tiny_gpt(dropout=0.0)
        trainer = _lm_trainer(model, items, tmp_path / f"{batch_size}", quiet, batch_size=batch_size,
                              grad_accum=accum, max_steps=2, lr=1e-2)
        trainer.fit()
        curves.append((torch.tensor([[h["loss"], h["grad_norm"]] for h in trainer.history]),
                       torch.cat([p.detach().reshape(-1) for p in model.parameters()])))
    for losses, params in curves[1:]:
        torch.testing.assert_close(losses, curves[0][0])  # the norm checks the gradient's scale exactly
        # Adam divides by sqrt(v): coordinates whose gradient is round-off noise move by up to ~lr
        torch.testing.assert_close(params, curves[0][1], atol=1e-3, rtol=0)


class _PoisonTask(LanguageModelingTask):
    """A LM task whose loss is NaN, or whose gradient is infinite (finite loss), at chosen calls."""

    def __init__(self, bad_calls: set[int], kind: str = "loss") -> None:
        super().__init__()
        self.calls, self.bad_calls, self.kind = 0, bad_calls, kind
        self._hook = None

    def __call__(self, model, batch) -> TaskOutput:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        out = super().__call__(model, batch)
        self.calls += 1
        if self.calls in self.bad_calls and self.kind == "loss":
            return TaskOutput(out.loss * math.nan, out.n_tokens, out.metrics)
        if self.calls in self.bad_calls:  # backward will write inf into the first parameter's gradient
            self._hook = next(model.parameters()).register_hook(lambda g: torch.full_like(g, math.inf))
        return out


def test_nan_loss_stops_and_keeps_last_checkpoint(tiny_gpt, lm_items, tmp_path, quiet) -> None:
    loader = ResumableLoader(lm_items, batch_size=8)
    trainer = Trainer(tiny_gpt(), _PoisonTask({3}), loader, out_dir=str(tmp_path), max_steps=5, save_every=2, **quiet)
    with pytest.raises(NonFiniteError, match="non-finite loss at step 3") as info:
        trainer.fit()
    assert info.value.step == 3 and info.value.last_checkpoint.name == "step-00000002"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000002"]
    from attnlab.training import read_checkpoint

    assert read_checkpoint(tmp_path / "checkpoints" / "step-00000002").state["step"] == 2


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_skip_mode_leaves_state_bit_identical(tiny_gpt, lm_items, tmp_path, quiet, kind) -> None:
    loader = ResumableLoader(lm_items, batch_size=8)
    trainer = Trainer(tiny_gpt(), _PoisonTask({2}, kind), loader, out_dir=str(tmp_path), max_steps=3,
                      nan_policy="skip", **quiet)
    trainer.train_step()
    params = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    optim = copy.deepcopy(trainer.optimizer.state_dict())
    record = trainer.train_step()  # the poisoned one
    assert trainer.skipped_steps == 1 and record["skipped_steps"] == 1 and trainer.optimizer_steps == 1
    assert not math.isfinite(record["grad_norm"])
    assert math.isfinite(record["loss"]) == (kind == "grad")
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, params[k]), k
    after = trainer.optimizer.state_dict()
    assert after["param_groups"] == optim["param_groups"]
    for i, st in optim["state"].items():
        for key, value in st.items():
            assert torch.equal(after["state"][i][key], value), (i, key)
    trainer.train_step()  # training continues
    assert trainer.optimizer_steps == 2 and trainer.step == 3


def test_resume_refuses_changed_model_or_batch(tiny_gpt, lm_items, tmp_path, quiet) -> None:
    _lm_trainer(tiny_gpt(), lm_items, tmp_path, quiet, max_steps=2).fit()
    with pytest.raises(ResumeError, match="different model.*d_model"):
        _lm_trainer(tiny_gpt(d_model=64), lm_items, tmp_path, quiet, max_steps=4)
    with pytest.raises(ResumeError, match="different model.*n_layers"):
        _lm_trainer(tiny_gpt(n_layers=3), lm_items, tmp_path, quiet, max_steps=4)
    with pytest.raises(ResumeError, match="batch size .*'batch_size': 8.*'batch_size': 4"):
        _lm_trainer(tiny_gpt(), lm_items, tmp_path, quiet, batch_size=4, max_steps=4)
    with pytest.raises(ResumeError, match="gradient accumulation"):
        _lm_trainer(tiny_gpt(), lm_items, tmp_path, quiet, grad_accum=2, max_steps=4)
    with pytest.raises(ResumeError, match="already holds checkpoints"):
        _lm_trainer(tiny_gpt(), lm_items, tmp_path, quiet, resume="never")
    with pytest.raises(ResumeError, match="no complete checkpoint"):
        _lm_trainer(tiny_gpt(), lm_items, tmp_path / "empty", quiet, resume="must")
    resumed = _lm_trainer(tiny_gpt(seed=9), lm_items, tmp_path, quiet, max_steps=4)
    assert resumed.step == 2 and resumed.tokens_seen == 2 * 8 * 11
    resumed.fit()
    assert resumed.step == 4


def test_metrics_csv_tensorboard_and_resume_truncation(tiny_gpt, lm_items, tmp_path, quiet) -> None:
    kw = {**quiet, "tensorboard": True}
    t = _lm_trainer(tiny_gpt(), lm_items, tmp_path, kw, max_steps=3, save_every=2)
    t.fit()
    with (tmp_path / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["name"] for r in rows} >= {"loss", "lr", "grad_norm", "tokens_per_s", "accuracy", "ppl", "nll"}
    assert max(int(r["step"]) for r in rows) == 3
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    # steps after the newest checkpoint are dropped on resume; here the final one is step 3
    (tmp_path / "checkpoints" / "step-00000003" / "COMPLETE").unlink()
    t2 = _lm_trainer(tiny_gpt(), lm_items, tmp_path, kw, max_steps=3)
    assert t2.step == 2
    t2.fit()
    with (tmp_path / "metrics.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["name"] == "loss"]
    assert steps == [1, 2, 3]


def test_evaluate_matches_manual_loss(tiny_gpt, lm_items, tmp_path, quiet) -> None:
    model = tiny_gpt()
    eval_batches = [{"ids": torch.stack([it["ids"] for it in lm_items[i : i + 5]])} for i in (0, 5, 10)]
    trainer = _lm_trainer(model, lm_items, tmp_path, quiet, max_steps=1)
    result = trainer.evaluate(eval_batches)
    ids = torch.cat([b["ids"] for b in eval_batches])  # (B, T)
    with torch.no_grad():
        logits = model(ids)  # (B, T, V)
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, 128), ids[:, 1:].reshape(-1))
    assert result["loss"] == pytest.approx(nll.item(), rel=1e-5) and result["ppl"] == pytest.approx(math.exp(nll))
    assert trainer.evaluate(eval_batches, max_batches=1)["loss"] != result["loss"]
    assert model.training


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu(tiny_gpt, lm_items, tmp_path, quiet, precision) -> None:
    trainer = _lm_trainer(tiny_gpt(), lm_items, tmp_path, quiet, max_steps=4, lr=1e-2, precision=precision)
    result = trainer.fit()
    assert (trainer.scaler is not None) == (precision == "fp16")
    assert math.isfinite(result.train_loss) and result.train_loss < trainer.history[0]["loss"]
    assert next(trainer.model.parameters()).dtype == torch.float32  # autocast: master weights stay fp32


def test_seq2seq_with_noam_and_label_smoothing(tmp_path, quiet) -> None:
    from attnlab.data import Seq2SeqCollator
    from attnlab.models.config import from_name
    from attnlab.models.transformer import Transformer

    torch.manual_seed(0)
    model = Transformer(from_name("tiny", dropout=0.1))
    pairs = [{"src": [3 + (i + j) % 20 for j in range(2 + i % 4)], "tgt": [3 + (i + j) % 20 for j in range(2 + i % 4)]}
             for i in range(32)]
    loader = ResumableLoader(pairs, batch_size=8, collate_fn=Seq2SeqCollator(pad_id=0, bos_id=1, eos_id=2))
    trainer = Trainer(model, Seq2SeqTask(label_smoothing=0.1), loader, out_dir=str(tmp_path), max_steps=6,
                      schedule="noam", warmup_steps=3, noam_factor=2.0, **quiet)
    assert trainer.schedule == noam(32, 3, factor=2.0)
    result = trainer.fit()
    assert [h["lr"] for h in trainer.history] == [noam(32, 3, 2.0)(s) for s in range(1, 7)]
    assert result.train_loss < trainer.history[0]["loss"] and "ppl" in trainer.history[-1]
    batch = loader.collate_fn(pairs[:4])
    del batch["tgt_in"]  # rebuilt from the labels and the model config's bos/pad ids
    out = Seq2SeqTask(label_smoothing=0.0)(model.eval(), batch)
    assert out.n_tokens.item() == (batch["labels"] != -100).sum().item()


class _BagClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, D)
        mask = torch.ones_like(ids, dtype=torch.bool) if attention_mask is None else attention_mask
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, D)
        return self.head(pooled)  # (B, C)


def test_classification_task_and_custom_module(tmp_path, quiet) -> None:
    from attnlab.data import ClassificationCollator

    g = torch.Generator().manual_seed(0)
    items = [{"ids": torch.randint(1, 50, (3 + i % 5,), generator=g).tolist(), "label": i % 3} for i in range(30)]
    for it in items:
        it["ids"][0] = 10 * it["label"] + 5  # a class marker the model can learn
    loader = ResumableLoader(items, batch_size=10, collate_fn=ClassificationCollator(pad_id=0))
    torch.manual_seed(0)
    trainer = Trainer(_BagClassifier(), ClassificationTask(), loader, out_dir=str(tmp_path), max_steps=30, lr=5e-2,
                      eval_every=30, **quiet)
    trainer.eval_data = [loader.collate_fn(items)]
    result = trainer.fit()
    assert result.eval["accuracy"] > 0.9 and "ppl" not in result.eval
    assert trainer.history[-2]["tokens_seen"] == 30 * 10  # classification counts examples


def test_bad_inputs_are_clear_errors(tiny_gpt, lm_items, tmp_path, quiet) -> None:
    with pytest.raises(TypeError, match="ResumableLoader"):
        Trainer(tiny_gpt(), LanguageModelingTask(), torch.utils.data.DataLoader(lm_items), out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="keep_last"):
        TrainConfig(keep_last=1)
    with pytest.raises(ValueError, match="batch has no 'src_ids'"):
        Seq2SeqTask()(tiny_gpt(), {"ids": torch.zeros(1, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match="noam.*d_model"):
        Trainer(_BagClassifier(), ClassificationTask(), ResumableLoader(lm_items, batch_size=2), out_dir=str(tmp_path),
                schedule="noam", warmup_steps=2, **quiet)
    with pytest.raises(ValueError, match="strategy='none'|torchrun"):
        _lm_trainer(tiny_gpt(), lm_items, tmp_path / "x", quiet, distributed="ddp")
