"""Why the CPU decode step packs its weights: one decode step's matrix-vector products, three layouts.

Dimension key: B rows per product (the batch at one token per step), I / O input / output width.

Times the 49 projections of one GPT-2 124M decode step (12 layers x qkv 768->2304, out 768->768,
fc 768->3072, proj 3072->768, plus the 768->50257 vocabulary head), fp32, as

- ``F.linear(x, W)`` with PyTorch's row-major (O, I) weight (what an eager ``nn.Linear`` does),
- ``x @ W.T`` with ``W.T`` stored contiguous, i.e. MKL on a column-major copy (HF GPT-2's ``Conv1D``
  layout; attnlab's fallback fast path),
- oneDNN's ``_linear_pointwise`` on a weight reordered once by ``_reorder_linear_weight`` (attnlab's
  CPU fast path, :mod:`attnlab.generation.packed`),

and prints milliseconds per step, the weight bandwidth this implies (494 MB / time) and each layout's
speed relative to row-major ``F.linear``.

    python benchmarks/gemv_layouts.py                 # B = 1
    python benchmarks/gemv_layouts.py --rows 32       # B = 32
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

GPT2_SHAPES = [(2304, 768), (768, 768), (3072, 768), (768, 3072)] * 12 + [(50257, 768)]  # (O, I)


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1, help="rows of x per product (B)")
    ap.add_argument("--repeats", type=int, default=7, help="timed passes (the best is reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weights = [torch.randn(o, i) * 0.02 for o, i in GPT2_SHAPES]  # (O, I) row-major
    xs = {i: torch.randn(args.rows, i) for i in (768, 3072)}  # (B, I)
    megabytes = sum(w.numel() for w in weights) * 4 / 1e6

    def row_major() -> None:
        for w in weights:
            F.linear(xs[w.shape[1]], w)

    col = [w.t().contiguous() for w in weights]  # (I, O) contiguous

    def column_major() -> None:
        for wt in col:
            xs[wt.shape[0]] @ wt

    layouts = {"F.linear, row-major (O, I)": row_major, "MKL, column-major copy": column_major}
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        packed = [torch.ops.mkldnn._reorder_linear_weight(w, args.rows) for w in weights]

        def onednn() -> None:
            for w, p in zip(weights, packed):
                torch.ops.mkldnn._linear_pointwise(xs[w.shape[1]], p, None, "none", [], "")

        layouts["oneDNN, packed once"] = onednn
    print(f"{len(weights)} GPT-2 projections, {megabytes:.0f} MB fp32, B={args.rows}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'layout':<28} {'ms/step':>8} {'GB/s':>6} {'x row-major':>12}")
    base = None
    for name, fn in layouts.items():
        ms = best_ms(fn, args.repeats)
        base = base or ms
        print(f"{name:<28} {ms:>8.2f} {megabytes / ms:>6.1f} {base / ms:>11.2f}x")


if __name__ == "__main__":
    main()
