"""An outside check for the Shakespeare figure: nanoGPT's small CPU recipe in plain PyTorch, no attnlab.

Dimension key: B batch (12), T context (64), D width (128), H heads (4), V vocabulary (65 characters).

    python benchmarks/quality/nanogpt_reference.py --seed 1337

The recipe of nanoGPT's ``train_shakespeare_char`` run on a CPU (4 layers, 4 heads, 128 wide, T=64,
B=12, 2000 iterations, AdamW lr 1e-3 with betas (0.9, 0.99), weight decay 0.1 on every matrix
(embeddings included), 100 warm-up steps then a cosine to 1e-4, gradient clipping at 1.0, dropout 0,
learned absolute positions, tied input/output embeddings, GPT-2 init with the residual projections
scaled by 1/sqrt(2L)), re-written here independently of attnlab's model, data and training code.
Batches are random windows of the first 90 % of the characters; the validation loss is the mean over
200 fixed random windows of the last 10 % (also printed: the first 20 of them, nanoGPT's CPU
``eval_iters``). If attnlab's learned-position result (``shakespeare.py --set positional=learned``)
lands where this one does, the gap to nanoGPT's quoted 1.88 is the recipe's, not attnlab's.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from _common import data_dir, report
from torch import Tensor, nn

LAYERS, HEADS, WIDTH, CONTEXT, BATCH, ITERS = 4, 4, 128, 64, 12, 2000
LR, MIN_LR, WARMUP, WEIGHT_DECAY = 1e-3, 1e-4, 100, 0.1


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.qkv, self.proj = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
        self.up, self.down = nn.Linear(WIDTH, 4 * WIDTH), nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        b, t, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        x = x + self.proj(heads.transpose(1, 2).reshape(b, t, WIDTH))
        return x + self.down(F.gelu(self.up(self.norm2(x)), approximate="tanh"))


class CharGPT(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, WIDTH), nn.Embedding(CONTEXT, WIDTH)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, vocab, bias=False)
        self.head.weight = self.tokens.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            for w in (block.proj.weight, block.down.weight):
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * LAYERS))

    def forward(self, ids: Tensor) -> Tensor:  # (B, T) -> (B, T, V)
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def lr_at(it: int) -> float:
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    progress = min((it - WARMUP) / (ITERS - WARMUP), 1.0)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * progress)) * (LR - MIN_LR)


def windows(data: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """B random (input, next-character) windows: (B, T), (B, T)."""
    starts = torch.randint(len(data) - CONTEXT - 1, (BATCH,), generator=g)
    x = torch.stack([data[s : s + CONTEXT] for s in starts.tolist()])
    y = torch.stack([data[s + 1 : s + CONTEXT + 1] for s in starts.tolist()])
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", default=None, help="also write the result to this file")
    args = ap.parse_args()
    text = (data_dir() / "tinyshakespeare.txt").read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text])
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]

    torch.manual_seed(args.seed)
    model = CharGPT(len(chars))
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": WEIGHT_DECAY}, {"params": vectors, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.99))
    g_train, g_val = torch.Generator().manual_seed(args.seed), torch.Generator().manual_seed(0)
    val_batches = [windows(val, g_val) for _ in range(200)]
    start = time.perf_counter()
    for it in range(ITERS):
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        x, y = windows(train, g_train)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (it + 1) % 500 == 0:
            print(f"iteration {it + 1}/{ITERS}: train loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
    model.eval()
    with torch.no_grad():
        losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in val_batches]
    report("nanogpt-reference-shakespeare-cpu", {
        "val_loss": round(sum(losses) / len(losses), 4), "val_loss_first_20": round(sum(losses[:20]) / 20, 4),
        "seed": args.seed, "train_seconds": round(time.perf_counter() - start, 1),
    }, args.json)


if __name__ == "__main__":
    main()
