"""Language modelling end to end: tokenizer, GPT, Trainer, evaluation (loss / perplexity) and sampling.

Dimension key: B batch, T context (block) length, V vocabulary.

    result = train_lm("input.txt", "runs/shakespeare", recipe="char-cpu")
    model, tok, info = load_model("runs/shakespeare")
    print(sample_text(model, tok, "ROMEO:", max_new_tokens=200))

Recipes bundle the model shape and the training hyper-parameters of a known setting (``LM_RECIPES``);
keyword overrides replace any field. Validation follows nanoGPT: the last 10 % of the characters, loss
averaged over ``eval_batches`` batches of random windows drawn once with a fixed seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.data import LMCollator, LMData, Tokenizer
from attnlab.data.io import PathLike
from attnlab.tasks.common import (
    Recipe,
    TimeBudget,
    fit_within,
    fixed_batches,
    resolve_device,
    resuming,
    save_model,
)


@dataclasses.dataclass
class LMRecipe(Recipe):
    """Model shape + training hyper-parameters for a character- or BPE-level GPT."""

    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    block_size: int = 64  # context length T
    dropout: float = 0.0
    positional: str = "learned"  # learned (GPT-2's, HF-exportable) | rope | sinusoidal | alibi | t5 | none
    bias: bool = True  # biases in linear layers and norms (GPT-2; False is nanoGPT's default, not HF-exportable)
    activation: str = "gelu_tanh"  # GPT-2's GELU; "gelu" is the exact one
    batch_size: int = 12
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_every: int = 500
    eval_batches: int = 200
    tokenizer: str = "char"  # char | bpe | wordpiece
    vocab_size: int = 8000  # for bpe / wordpiece
    seed: int = 1337


LM_RECIPES: dict[str, LMRecipe] = {
    # nanoGPT's shakespeare_char settings, the small CPU one and the GPU one, with rotary positions
    # (RoPE: val loss 1.78 vs 1.90 for nanoGPT's learned positions on the CPU setting, see
    # benchmarks/RESULTS.md); `--set positional=learned` gives nanoGPT's learned positions
    "char-cpu": LMRecipe(positional="rope"),
    "char-gpu": LMRecipe(n_layers=6, n_heads=6, d_model=384, block_size=256, dropout=0.2, batch_size=64,
                         positional="rope",
                         max_steps=5000, eval_every=250),
    # `attnlab demo`: the CPU setting with a wider batch, sized for 1.5-3 minutes on 2 cores
    "demo": LMRecipe(n_layers=4, n_heads=4, d_model=128, block_size=64, batch_size=16, max_steps=1500,
                     positional="rope", eval_every=500, eval_batches=50),
    "tiny": LMRecipe(n_layers=2, n_heads=2, d_model=32, block_size=32, batch_size=8, max_steps=20, lr=3e-3,
                     warmup_steps=2, eval_every=0, eval_batches=4),
}


def lm_recipe(name: str, **overrides: Any) -> LMRecipe:
    if name not in LM_RECIPES:
        raise ValueError(f"unknown LM preset {name!r}; choose one of {sorted(LM_RECIPES)}")
    return LM_RECIPES[name].replace(**{k: v for k, v in overrides.items() if v is not None})


def get_tokenizer(out_dir: Path, data: PathLike, kind: str, vocab_size: int) -> Tokenizer:
    """The run's tokenizer: the saved one when resuming a run in ``out_dir``, else trained on ``data``."""
    if resuming(out_dir) and (out_dir / "tokenizer.json").is_file():
        tok = Tokenizer.load(out_dir)
        if tok.kind != kind:
            raise ValueError(f"{out_dir} holds a {tok.kind!r} tokenizer but {kind!r} was asked for; use another --out")
        return tok
    tok = Tokenizer.train(kind, [data], vocab_size=vocab_size)  # type: ignore[arg-type]
    tok.save(out_dir)
    return tok


def build_gpt(recipe: LMRecipe, tok: Tokenizer) -> nn.Module:
    """A GPT-2-layout model sized by ``recipe`` for ``tok``.

    It saves in HF GPT-2 format when ``recipe.positional == "learned"`` and ``recipe.bias``; otherwise
    in attnlab's own folder format (same safetensors layout, attnlab config), which ``attnlab generate``
    and :func:`attnlab.tasks.common.load_model` read.
    """
    from attnlab.models.gpt import GPT, GPTConfig

    config = GPTConfig(
        vocab_size=tok.vocab_size, n_layers=recipe.n_layers, n_heads=recipe.n_heads, d_model=recipe.d_model,
        max_len=recipe.block_size, dropout=recipe.dropout, positional=recipe.positional, bias=recipe.bias,
        activation=recipe.activation,
        pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id,
    )
    return GPT(config)


@dataclasses.dataclass
class LMRun:
    """Everything a language-modelling run needs; :meth:`trainer` wires it to the Trainer."""

    recipe: LMRecipe
    out_dir: Path
    tokenizer: Tokenizer
    data: LMData
    model: nn.Module
    eval_batches: list[dict[str, torch.Tensor]]

    @classmethod
    def prepare(cls, data: PathLike, out_dir: PathLike, recipe: LMRecipe) -> LMRun:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(recipe.seed)
        tok = get_tokenizer(out, data, recipe.tokenizer, recipe.vocab_size)
        lm = LMData.from_file(data, tok)
        model = build_gpt(recipe, tok)
        val = lm.blocks("val", recipe.block_size)
        batches = fixed_batches(val, recipe.eval_batches, recipe.batch_size, LMCollator(tok.pad_id))
        return cls(recipe, out, tok, lm, model, batches)

    def trainer(self, *, device: str = "auto", progress: bool = True, tensorboard: bool = False) -> Any:
        from attnlab.training import (
            LanguageModelingTask,
            ResumableLoader,
            TrainConfig,
            Trainer,
        )

        r = self.recipe
        loader = ResumableLoader(self.data.blocks("train", r.block_size), batch_size=r.batch_size,
                                 collate_fn=LMCollator(self.tokenizer.pad_id), seed=r.seed)
        config = TrainConfig(
            out_dir=str(self.out_dir), max_steps=r.max_steps, lr=r.lr, min_lr=r.min_lr,
            warmup_steps=min(r.warmup_steps, r.max_steps // 10),
            weight_decay=r.weight_decay, betas=(0.9, r.beta2), grad_clip=r.grad_clip, schedule="cosine",
            eval_every=r.eval_every, seed=r.seed, device=str(resolve_device(device)), progress=progress,
            tensorboard=tensorboard, log_every=max(1, min(10, r.max_steps // 10)), save_every=max(r.max_steps // 4, 1),
        )
        return Trainer(self.model, LanguageModelingTask(), loader, config, eval_data=self.eval_batches)


def evaluate_lm(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Mean token loss and perplexity of ``model`` over ``batches`` (each with ``ids`` and ``labels``)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits = model(batch["ids"].to(device))  # (B, T, V)
            labels = batch["labels"].to(device)  # (B, T)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum")
            total, count = total + loss.item(), count + int((labels != -100).sum())
    model.train(was_training)
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0))}


def train_lm(
    data: PathLike, out_dir: PathLike, *, recipe: str | LMRecipe = "char-cpu", device: str = "auto",
    progress: bool = True, time_budget: float | None = None, tensorboard: bool = False, **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) a GPT on a text file; saves the model folder into ``out_dir``; returns the metrics."""
    r = recipe if isinstance(recipe, LMRecipe) else lm_recipe(recipe)
    r = r.replace(**{k: v for k, v in overrides.items() if v is not None})
    run = LMRun.prepare(data, out_dir, r)
    start = time.perf_counter()
    trainer = run.trainer(device=device, progress=progress, tensorboard=tensorboard)
    finished, final = fit_within(trainer, TimeBudget(time_budget))
    metrics = {"loss": final["nll"], "ppl": final["ppl"]} if final else evaluate_lm(run.model, run.eval_batches)
    info = {
        "task": "lm", "recipe": dataclasses.asdict(r), "step": trainer.step, "finished": finished,
        "val_loss": metrics["loss"], "val_ppl": metrics["ppl"], "train_seconds": time.perf_counter() - start,
        "data": str(data),
    }
    save_model(run.model, run.out_dir, tokenizer=run.tokenizer, info=info)
    return info


def sample_text(
    model: nn.Module, tok: Tokenizer, prompt: str, *, max_new_tokens: int = 200, temperature: float = 0.8,
    top_k: int = 0, seed: int | None = 0, greedy: bool = False,
) -> str:
    """Prompt plus a sampled continuation, keeping the prompt within the model's context window."""
    from attnlab.generation import generate

    ctx = int(getattr(model.config, "max_len", 0)) or None
    ids = tok.encode(prompt) if prompt else _start_ids(tok)
    pieces = [prompt]
    remaining = max_new_tokens
    while remaining > 0:  # past the context, restart from the last half of it (KV-cached chunks, not per token)
        window = ids[-(ctx // 2) :] if ctx and len(ids) >= ctx else ids
        n = min(remaining, ctx - len(window)) if ctx else remaining
        out = generate(model, [window], max_new_tokens=n, do_sample=not greedy, temperature=temperature,
                       top_k=top_k, seed=seed, ignore_eos=True)
        new = out.new_tokens[0, : int(out.lengths[0])].tolist()
        ids += new
        pieces.append(tok.decode(new))
        remaining -= len(new)
        seed = None if seed is None else seed + 1
    return "".join(pieces)


def _start_ids(tok: Tokenizer) -> list[int]:
    """What an empty prompt starts from: a newline when the vocabulary knows it (as nanoGPT), else bos."""
    newline = tok.encode("\n")
    if newline and tok.unk_id not in newline:
        return newline
    if tok.bos_id is None:
        raise ValueError("empty prompt and the tokenizer has neither a newline token nor bos; give a prompt")
    return [tok.bos_id]
