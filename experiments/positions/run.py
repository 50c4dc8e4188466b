"""Experiment: what positional information buys, and how each encoding extrapolates.

Claims: (a) self-attention without positional encoding is permutation-equivariant, so a model that
pools its outputs cannot tell "dog bites man" from "man bites dog" — a word-order task stays at chance;
(b) relative schemes (RoPE, ALiBi) extrapolate to longer inputs than absolute ones (sinusoidal,
learned): Press et al. 2022 (ALiBi), Su et al. 2021 (RoPE).

Part A: classify whether "dog" comes before "man" in a shuffled sentence with distractor words;
encoder + mean pooling, with each positional scheme and with none.
Part B: copy task ``<bos> x1..xn <sep> x1..xn`` trained with n <= L, tested with n up to 4L; per-token
accuracy on the copied half (teacher forcing). Learned tables are sized for the test lengths, so
positions beyond training use rows that were never trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import LMSpec, TinyLM, train, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
SCHEMES = ["none", "sinusoidal", "learned", "rope", "alibi"]


# ---- part A: word order -----------------------------------------------------------------------

DOG, MAN, BITES, N_FILL = 0, 1, 2, 13  # fillers are tokens 3..15


def word_order_batch(batch: int, length: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    x = 3 + torch.randint(N_FILL, (batch, length), generator=gen)  # (B, T) distractors
    for b in range(batch):
        i, j, k = torch.randperm(length, generator=gen)[:3].tolist()
        x[b, i], x[b, j], x[b, k] = DOG, MAN, BITES
    y = ((x == DOG).float().argmax(1) < (x == MAN).float().argmax(1)).long()  # (B,) 1 = dog first
    return x, y


class PooledClassifier(nn.Module):
    def __init__(self, positional: str) -> None:
        super().__init__()
        self.body = TinyLM(LMSpec(16, d_model=64, n_heads=4, n_layers=2, max_len=64, positional=positional, causal=False))
        self.body.head = nn.Identity()
        self.cls = nn.Linear(64, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.cls(self.body(x).mean(1))  # (B, 2): mean pooling is order-blind by itself


def part_a(steps: int) -> dict[str, float]:
    acc = {}
    for scheme in SCHEMES:
        torch.manual_seed(0)
        model = PooledClassifier(scheme)
        gen = torch.Generator().manual_seed(0)
        train(model, lambda: word_order_batch(64, 8, gen), steps=steps, lr=2e-3, desc=f"order/{scheme}",
              loss_fn=nn.functional.cross_entropy)
        model.eval()
        x, y = word_order_batch(2000, 8, torch.Generator().manual_seed(99))
        with torch.no_grad():
            acc[scheme] = (model(x).argmax(-1) == y).float().mean().item()
    return acc


# ---- part B: copy and extrapolate -------------------------------------------------------------

VOCAB, BOS, SEP = 18, 16, 17  # symbols 0..15


def copy_batch(batch: int, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    sym = torch.randint(16, (batch, n), generator=gen)
    x = torch.cat([torch.full((batch, 1), BOS), sym, torch.full((batch, 1), SEP), sym], 1)  # (B, 2n+2)
    y = torch.full_like(x, -100)
    y[:, n + 1 : -1] = x[:, n + 2 :]  # predict the copy only
    return x, y


def part_b(steps: int, train_len: int, test_lens: list[int]) -> dict[str, dict[int, float]]:
    max_len = 2 * max(test_lens) + 2
    out: dict[str, dict[int, float]] = {}
    for scheme in SCHEMES[1:]:
        torch.manual_seed(0)
        model = TinyLM(LMSpec(VOCAB, d_model=64, n_heads=4, n_layers=2, max_len=max_len, positional=scheme))
        gen = torch.Generator().manual_seed(0)

        def batch():
            n = int(torch.randint(4, train_len + 1, (1,), generator=gen))
            return copy_batch(32, n, gen)

        loss = lambda logits, y: nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)  # noqa: E731
        train(model, batch, steps=steps, lr=2e-3, warmup=50, desc=f"copy/{scheme}", loss_fn=loss)
        model.eval()
        out[scheme] = {}
        for n in test_lens:
            x, y = copy_batch(64, n, torch.Generator().manual_seed(n))
            with torch.no_grad():
                pred = model(x).argmax(-1)
            keep = y != -100
            out[scheme][n] = (pred[keep] == y[keep]).float().mean().item()
    return out


def plot(a: dict, b: dict, train_len: int, path: Path) -> None:
    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    ax[0].bar(list(a), [a[s] for s in a], color=["gray"] + ["C0"] * (len(a) - 1))
    ax[0].axhline(0.5, color="red", ls=":", label="chance")
    ax[0].set(ylim=(0, 1.05), ylabel="accuracy", title='"dog bites man" vs "man bites dog"')
    ax[0].legend()
    for scheme, accs in b.items():
        ax[1].plot(list(accs), list(accs.values()), "o-", label=scheme)
    ax[1].axvline(train_len, color="gray", ls=":", label="longest training length")
    ax[1].set(xscale="log", xlabel="sequence length n (copy task)", ylabel="token accuracy", title="length extrapolation")
    ax[1].legend()
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="train at n <= 64, test to 256, longer (GPU)")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    train_len = 64 if args.full else 32
    test_lens = [train_len // 2, train_len, 2 * train_len, 4 * train_len]
    a = part_a(1500 if args.full else 300)
    b = part_b(4000 if args.full else 800, train_len, test_lens)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(a, b, train_len, args.out / "positions.png")
    write_results(args.out, {"word_order_accuracy": a, "copy_accuracy": b, "train_len": train_len})
    print("word-order accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in a.items()))
    print("copy accuracy by length " + str(test_lens))
    for scheme, accs in b.items():
        print(f"  {scheme:<11}" + " ".join(f"{v:6.3f}" for v in accs.values()))
    print(f"figure: {args.out / 'positions.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
