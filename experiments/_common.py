"""Shared harness for the experiments: data, a configurable small causal LM, a training loop, plots.

Dimension key: B batch, T length, D model width, V vocabulary.

Each experiment folder has a ``run.py`` exposing ``main(argv) -> int``; ``attnlab experiment NAME``
imports and calls it. ``--full`` selects the GPU-sized setting; the default is the reduced CPU run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from attnlab.core.masks import causal_mask
from attnlab.layers import BlockConfig, EncoderLayer, TokenEmbedding
from attnlab.positional.scheme import PositionScheme

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def shakespeare_text() -> str:
    """Tiny Shakespeare: ``$ATTNLAB_DATA`` or ``../shared/data`` first, else the copy bundled in the package."""
    for base in (os.environ.get("ATTNLAB_DATA"), REPO.parent / "shared" / "data"):
        if base and (Path(base) / "tinyshakespeare.txt").is_file():
            return (Path(base) / "tinyshakespeare.txt").read_text()
    bundled = Path(__import__("attnlab").__file__).parent / "assets" / "tinyshakespeare.txt"
    if bundled.is_file():
        return bundled.read_text()
    raise FileNotFoundError("tiny Shakespeare not found: set ATTNLAB_DATA or place shared/data beside the repo")


class CharData:
    """Character-level train/val split (first 90% / last 10%, as nanoGPT)."""

    def __init__(self, text: str) -> None:
        chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(chars)}
        data = torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        n = int(0.9 * len(data))
        self.train, self.val, self.vocab_size = data[:n], data[n:], len(chars)

    def batch(self, split: str, batch_size: int, ctx: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        data = self.train if split == "train" else self.val
        ix = torch.randint(len(data) - ctx - 1, (batch_size,), generator=gen)
        x = torch.stack([data[i : i + ctx] for i in ix])  # (B, T)
        y = torch.stack([data[i + 1 : i + ctx + 1] for i in ix])  # (B, T)
        return x, y


@dataclass
class LMSpec:
    vocab_size: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    max_len: int = 256
    positional: str = "learned"
    norm_first: bool = True
    attn_scale: float | None = None  # None: 1/sqrt(Dh)
    dropout: float = 0.0
    causal: bool = True


class TinyLM(nn.Module):
    """A GPT-shaped stack of attnlab blocks whose every knob an experiment may turn."""

    def __init__(self, spec: LMSpec) -> None:
        super().__init__()
        self.spec = spec
        block = BlockConfig(
            d_model=spec.d_model, n_heads=spec.n_heads, d_ff=4 * spec.d_model, dropout=spec.dropout,
            activation="gelu", norm_first=spec.norm_first, attn_scale=spec.attn_scale,
        )
        self.embed = TokenEmbedding(spec.vocab_size, spec.d_model)
        self.pos = PositionScheme(
            spec.positional, d_model=spec.d_model, n_heads=spec.n_heads, head_dim=spec.d_model // spec.n_heads,
            max_len=spec.max_len, causal=spec.causal,
        )
        self.layers = nn.ModuleList(EncoderLayer(block) for _ in range(spec.n_layers))
        self.norm = nn.LayerNorm(spec.d_model) if spec.norm_first else nn.Identity()
        self.head = nn.Linear(spec.d_model, spec.vocab_size)

    def forward(self, ids: Tensor) -> Tensor:
        T = ids.shape[1]
        pos = torch.arange(T, device=ids.device)
        x = self.embed(ids)  # (B, T, D)
        absolute = self.pos.absolute(pos)
        if absolute is not None:
            x = x + absolute
        mask = causal_mask(T, device=ids.device) if self.spec.causal else None
        for layer in self.layers:
            x = layer(x, mask=mask, bias=self.pos.attn_bias(pos, pos), rope=self.pos.rotary(pos))
        return self.head(self.norm(x))  # (B, T, V)


def train(
    model: nn.Module,
    next_batch,
    *,
    steps: int,
    lr: float,
    warmup: int = 0,
    desc: str = "train",
    clip: float | None = 1.0,
    loss_fn=None,
) -> list[float]:
    """AdamW with linear warmup; returns per-step losses (NaN once diverged, then stops)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    loss_fn = loss_fn or (lambda logits, y: nn.functional.cross_entropy(logits.flatten(0, -2), y.flatten()))
    losses: list[float] = []
    model.train()
    for _ in tqdm(range(steps), desc=desc, leave=False, file=sys.stderr, mininterval=1.0):
        x, y = next_batch()
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            losses.append(float("nan"))
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def lm_eval(model: nn.Module, data: CharData, *, ctx: int, batches: int = 20, batch_size: int = 32) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    total = 0.0
    for _ in range(batches):
        x, y = data.batch("val", batch_size, ctx, gen)
        total += nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    model.train()
    return total / batches


def write_results(folder: Path, results: dict) -> None:
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")


def ema(xs: list[float], alpha: float = 0.1) -> list[float]:
    out, m = [], None
    for x in xs:
        m = x if m is None or math.isnan(m) else (1 - alpha) * m + alpha * x
        out.append(m)
    return out


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
