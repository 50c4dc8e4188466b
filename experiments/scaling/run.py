"""Experiment: why attention divides by sqrt(d_k).

Claim (Vaswani et al. 2017, section 3.2.1): for large d_k the dot products grow large in magnitude
(variance d_k for unit-variance q, k), pushing the softmax into regions with extremely small
gradients; scaling by 1/sqrt(d_k) counteracts this.

Part A measures, for random unit-variance q and k, the attention entropy and the gradient norm that
reaches the scores through the softmax, with and without the factor, as d_k grows.
Part B trains the same character LM on tiny Shakespeare with and without the factor.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import CharData, LMSpec, TinyLM, ema, lm_eval, shakespeare_text, train, write_results  # noqa: E402

from attnlab.core.attention import attention  # noqa: E402

HERE = Path(__file__).resolve().parent


def saturation(d_k: int, scaled: bool, *, T: int = 64, trials: int = 8) -> tuple[float, float]:
    """(mean row entropy in nats, mean Frobenius norm of the softmax Jacobian d w / d scores).

    q, k have unit-variance entries, so q.k has variance d_k. The Jacobian of a softmax row is
    diag(w) - w w^T; its norm goes to 0 as the row saturates to one-hot: no gradient reaches q or k.
    """
    gen = torch.Generator().manual_seed(d_k)
    ent, jac = 0.0, 0.0
    for _ in range(trials):
        q = torch.randn(1, 1, T, d_k, generator=gen, dtype=torch.float64)
        k, v = torch.randn(1, 1, T, d_k, generator=gen, dtype=torch.float64), torch.zeros(1, 1, T, d_k, dtype=torch.float64)
        scale = 1 / math.sqrt(d_k) if scaled else 1.0
        _, w = attention(q, k, v, scale=scale, need_weights=True)  # (1, 1, T, T)
        ent += -(w * w.clamp_min(1e-300).log()).sum(-1).mean().item()
        s2, s3 = w.pow(2).sum(-1), w.pow(3).sum(-1)  # ||diag(w) - w w^T||_F^2 = s2 - 2 s3 + s2^2
        jac += (s2 - 2 * s3 + s2.pow(2)).clamp_min(0).sqrt().mean().item()
    return ent / trials, jac / trials


def part_a(dims: list[int]) -> dict:
    res = {"d_k": dims, "entropy_scaled": [], "entropy_unscaled": [], "grad_scaled": [], "grad_unscaled": []}
    for d in dims:
        for scaled in (True, False):
            e, g = saturation(d, scaled)
            tag = "scaled" if scaled else "unscaled"
            res[f"entropy_{tag}"].append(e)
            res[f"grad_{tag}"].append(g)
    return res


def part_b(steps: int, d_model: int, n_heads: int, ctx: int) -> dict:
    data = CharData(shakespeare_text())
    curves, val = {}, {}
    for scaled in (True, False):
        torch.manual_seed(0)
        spec = LMSpec(data.vocab_size, d_model=d_model, n_heads=n_heads, n_layers=2, max_len=ctx,
                      attn_scale=None if scaled else 1.0)
        model = TinyLM(spec)
        gen = torch.Generator().manual_seed(0)
        tag = "scaled" if scaled else "unscaled"
        curves[tag] = train(model, lambda: data.batch("train", 16, ctx, gen), steps=steps, lr=1e-3, desc=tag)
        val[tag] = lm_eval(model, data, ctx=ctx)
    return {"curves": curves, "val_loss": val, "head_dim": d_model // n_heads}


def plot(a: dict, b: dict, path: Path) -> None:
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for tag, style in (("scaled", "o-"), ("unscaled", "s--")):
        ax[0].plot(a["d_k"], a[f"entropy_{tag}"], style, label=tag)
        ax[1].plot(a["d_k"], a[f"grad_{tag}"], style, label=tag)
        ax[2].plot(ema(b["curves"][tag]), label=f"{tag} (val {b['val_loss'][tag]:.2f})")
    ax[0].axhline(math.log(64), color="gray", lw=0.8, ls=":", label="uniform (log T)")
    ax[0].set(xscale="log", xlabel="d_k", ylabel="attention entropy (nats)", title="softmax saturation")
    ax[1].set(xscale="log", yscale="log", xlabel="d_k", ylabel="||d softmax / d scores||_F (per row)", title="gradient through softmax")
    ax[2].set(xlabel="step", ylabel="train loss (EMA)", title=f"char LM, head dim {b['head_dim']}")
    for x in ax:
        x.legend()
        x.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="larger model and more steps (GPU)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    steps = args.steps or (3000 if args.full else 300)
    d_model, heads = (512, 2) if args.full else (256, 2)  # large head dim is where saturation bites
    a = part_a([4, 16, 64, 256, 1024])
    b = part_b(steps, d_model, heads, ctx=64)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(a, b, args.out / "scaling.png")
    write_results(args.out, {"part_a": a, "part_b": {"val_loss": b["val_loss"], "head_dim": b["head_dim"], "steps": steps}})
    print("d_k        " + " ".join(f"{d:>8}" for d in a["d_k"]))
    for key in ("entropy_scaled", "entropy_unscaled", "grad_scaled", "grad_unscaled"):
        print(f"{key:<17}" + " ".join(f"{x:8.3g}" for x in a[key]))
    print(f"val loss after {steps} steps: scaled {b['val_loss']['scaled']:.3f}, unscaled {b['val_loss']['unscaled']:.3f}")
    print(f"figure: {args.out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
