"""Experiment: a Transformer trains faster than an RNN encoder-decoder of similar size.

Claim (Vaswani et al. 2017, §4 and table 1): recurrent layers need O(n) sequential operations per
sequence, self-attention O(1), so the Transformer parallelizes across positions and trains in a
fraction of the time of recurrent models.

We time full training steps (forward, backward, Adam update) on the same batches for a Transformer
and a Bahdanau-attention GRU encoder-decoder with about the same number of parameters, at several
sequence lengths, and report training tokens per second (target tokens).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import device, write_results  # noqa: E402

from attnlab.classic import RNNSeq2Seq  # noqa: E402
from attnlab.models import Transformer, from_name  # noqa: E402
from attnlab.models.common import count_parameters  # noqa: E402

HERE = Path(__file__).resolve().parent
VOCAB = 8000


def models(full: bool) -> dict[str, nn.Module]:
    d = 512 if full else 256
    transformer = Transformer(from_name(
        "vaswani-base", vocab_size=VOCAB, d_model=d, n_heads=8, d_ff=4 * d, n_encoder_layers=3,
        n_decoder_layers=3, dropout=0.1, max_len=1024,
    ))
    rnn = RNNSeq2Seq(from_name(
        "rnn-bahdanau", vocab_size=VOCAB, d_embed=d, d_hidden=768 if full else 288, n_layers=1, dropout=0.1, max_len=1024,
    ))
    return {"transformer": transformer, "rnn-bahdanau": rnn}


def tokens_per_second(model: nn.Module, batch: int, length: int, steps: int, dev: torch.device) -> float:
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(3, VOCAB, (batch, length), generator=gen).to(dev)
    tgt = torch.randint(3, VOCAB, (batch, length + 1), generator=gen).to(dev)

    def step() -> None:
        logits = model(src, tgt[:, :-1])  # (B, T, V)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return batch * length * steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="width 512 and longer sequences (GPU)")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    dev = device()
    lengths = [16, 32, 64, 128, 256] if args.full else [16, 32, 64]
    batch, steps = (64, 20) if args.full else (16, 3)
    torch.manual_seed(0)
    ms = models(args.full)
    params = {name: count_parameters(m) for name, m in ms.items()}
    rates = {name: [tokens_per_second(m, batch, n, steps, dev) for n in lengths] for name, m in ms.items()}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in rates.items():
        ax.plot(lengths, r, "o-", label=f"{name} ({params[name] / 1e6:.1f}M params)")
    ax.set(xscale="log", xlabel="sequence length (source = target)", ylabel="training tokens / s",
           title=f"training throughput ({dev}, batch {batch})")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "parallelism.png", dpi=90)
    plt.close(fig)
    write_results(args.out, {"device": str(dev), "lengths": lengths, "batch": batch, "params": params, "tokens_per_s": rates})
    print(f"{'length':>7} " + " ".join(f"{n:>14}" for n in rates))
    for i, n in enumerate(lengths):
        print(f"{n:>7} " + " ".join(f"{rates[k][i]:14.0f}" for k in rates))
    ratio = [t / r for t, r in zip(rates["transformer"], rates["rnn-bahdanau"])]
    print("transformer / rnn: " + ", ".join(f"{x:.2f}x" for x in ratio) + f"; params {params}")
    print(f"figure: {args.out / 'parallelism.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
