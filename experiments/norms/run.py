"""Experiment: post-LN versus pre-LN stability as depth and learning rate grow, with and without warmup.

Claim (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture"; also Liu et al.
2020): the original post-LN Transformer needs a learning-rate warmup and becomes unstable as depth
and learning rate grow, because gradients near the output are large at initialization; pre-LN trains
stably without warmup.

Grid: {post-LN, pre-LN} x {no warmup, warmup} x depth x peak learning rate; each cell trains a
character LM on tiny Shakespeare for a fixed number of steps with Adam and no gradient clipping,
and reports the final training loss (diverged = NaN/inf or worse than the loss at step 0).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import CharData, LMSpec, TinyLM, shakespeare_text, train, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent


def cell(data: CharData, *, norm_first: bool, depth: int, lr: float, warmup: int, steps: int, d_model: int) -> float:
    torch.manual_seed(0)
    model = TinyLM(LMSpec(data.vocab_size, d_model=d_model, n_heads=4, n_layers=depth, max_len=64, norm_first=norm_first))
    gen = torch.Generator().manual_seed(0)
    tag = f"{'pre' if norm_first else 'post'} d{depth} lr{lr:g} wu{warmup}"
    losses = train(model, lambda: data.batch("train", 16, 64, gen), steps=steps, lr=lr, warmup=warmup, clip=None, desc=tag)
    final = sum(losses[-20:]) / len(losses[-20:])
    if len(losses) < steps or not math.isfinite(final) or final >= losses[0]:
        return float("nan")
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="deeper, wider, longer grid (GPU)")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    depths = [2, 6, 12, 24] if args.full else [2, 8]
    lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2] if args.full else [3e-4, 1e-3, 3e-3, 1e-2]
    steps, d_model = (2000, 256) if args.full else (150, 64)
    warmups = [0, steps // 4]
    data = CharData(shakespeare_text())
    grid: dict[str, list[list[float]]] = {}
    for norm_first in (False, True):
        for warmup in warmups:
            key = f"{'pre' if norm_first else 'post'}-LN, warmup {warmup}"
            grid[key] = [[cell(data, norm_first=norm_first, depth=d, lr=lr, warmup=warmup, steps=steps, d_model=d_model)
                          for lr in lrs] for d in depths]
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    finite = [v for g in grid.values() for row in g for v in row if math.isfinite(v)]
    vmin, vmax = (min(finite), max(finite)) if finite else (0, 1)
    for ax, (key, g) in zip(axes, grid.items()):
        arr = np.array(g, dtype=float)
        ax.imshow(np.ma.masked_invalid(arr), cmap="viridis_r", vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(len(depths)):
            for j in range(len(lrs)):
                ax.text(j, i, "div" if math.isnan(arr[i, j]) else f"{arr[i, j]:.2f}", ha="center", va="center",
                        color="red" if math.isnan(arr[i, j]) else "white", fontsize=9)
        ax.set(title=key, xticks=range(len(lrs)), xticklabels=[f"{x:g}" for x in lrs], yticks=range(len(depths)),
               yticklabels=depths, xlabel="peak learning rate", ylabel="layers")
    fig.suptitle(f"final training loss after {steps} steps (div = diverged)")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "norms.png", dpi=90)
    plt.close(fig)
    write_results(args.out, {"depths": depths, "lrs": lrs, "steps": steps, "final_loss": grid})
    for key, g in grid.items():
        print(key)
        for d, row in zip(depths, g):
            print(f"  depth {d:>2}: " + " ".join("   div" if math.isnan(v) else f"{v:6.3f}" for v in row))
    print(f"figure: {args.out / 'norms.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
