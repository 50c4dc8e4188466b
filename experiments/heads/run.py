"""Experiment: one head versus several at equal parameter count.

Claim (Vaswani et al. 2017, section 3.2.2 and table 3A): multi-head attention lets the model attend
to information from different representation subspaces at different positions at once; a single
head averages, which inhibits this. Quality drops with one head (and also with too many).

Task: at each position t the target is the pair (x[t-1], x[t-3]) encoded as one of 64 classes
(8 symbols squared), so every prediction needs two different relations at once. Models: one causal
attention layer (plus its feed-forward) of width 64 with 1, 2, 4 or 8 heads — the parameter count
does not depend on the number of heads. Afterwards, each head's mean attention on offsets -1..-4
shows which relation it learned.
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

from attnlab.core.attention import attention  # noqa: E402
from attnlab.models.common import count_parameters  # noqa: E402

HERE = Path(__file__).resolve().parent
SYMBOLS, T = 8, 32


def batch(b: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    x = torch.randint(SYMBOLS, (b, T), generator=gen)  # (B, T)
    y = torch.full_like(x, -100)
    y[:, 3:] = x[:, 2:-1] * SYMBOLS + x[:, :-3]  # (x[t-1], x[t-3]) as one class
    return x, y


def loss_fn(logits: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)


@torch.no_grad()
def head_offsets(model: TinyLM, x: Tensor, max_offset: int = 4) -> Tensor:
    """(H, max_offset) mean attention weight that each head puts on offsets -1..-max_offset."""
    seen: dict = {}
    attn = model.layers[0].self_attn
    attn.capture_fn = lambda **kw: seen.update(kw)
    model(x)
    attn.capture_fn = None
    _, w = attention(seen["q"], seen["k"], seen["v"], seen["mask"], scale=seen["scale"], need_weights=True)  # (B, H, T, T)
    return torch.stack([w.diagonal(offset=-o, dim1=-2, dim2=-1).mean((0, 2)) for o in range(1, max_offset + 1)], 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    steps = 4000 if args.full else 1200
    results, offsets, params = {}, {}, {}
    for heads in (1, 2, 4, 8):
        torch.manual_seed(0)
        model = TinyLM(LMSpec(SYMBOLS, d_model=64, n_heads=heads, n_layers=1, max_len=T))
        model.head = nn.Linear(64, SYMBOLS * SYMBOLS)
        params[heads] = count_parameters(model)
        gen = torch.Generator().manual_seed(0)
        losses = train(model, lambda: batch(64, gen), steps=steps, lr=3e-3, warmup=100, desc=f"{heads} heads", loss_fn=loss_fn)
        model.eval()
        x, y = batch(1000, torch.Generator().manual_seed(7))
        with torch.no_grad():
            pred = model(x).argmax(-1)
        keep = y != -100
        results[heads] = {"accuracy": (pred[keep] == y[keep]).float().mean().item(), "final_loss": sum(losses[-50:]) / 50}
        offsets[heads] = head_offsets(model, x[:200]).tolist()
    assert len(set(params.values())) == 1, params
    fig, ax = plt.subplots(1, 5, figsize=(17, 3.5), gridspec_kw={"width_ratios": [1.3, 1, 1, 1, 1]})
    ax[0].bar([str(h) for h in results], [r["accuracy"] for r in results.values()])
    ax[0].set(xlabel="heads", ylabel="accuracy", title=f"two relations at once ({params[1]:,} params each)", ylim=(0, 1.05))
    for i, h in enumerate(results):
        im = ax[i + 1].imshow(offsets[h], vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax[i + 1].set(title=f"{h} head(s): attention by offset", xlabel="offset", ylabel="head",
                      xticks=range(4), xticklabels=["-1", "-2", "-3", "-4"], yticks=range(h))
    fig.colorbar(im, ax=ax[1:], shrink=0.8)
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "heads.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    write_results(args.out, {"steps": steps, "results": results, "offset_attention": offsets, "params": params})
    for h, r in results.items():
        print(f"{h} head(s): accuracy {r['accuracy']:.3f}, final loss {r['final_loss']:.3f}; "
              "offset mass per head " + "; ".join("[" + ", ".join(f"{v:.2f}" for v in row) + "]" for row in offsets[h]))
    print(f"figure: {args.out / 'heads.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
