"""Cost of capturing attention patterns: selective recomputation vs switching the model to the slow path.

Dimension key: B batch, L layers, H heads, T sequence length, D model width.

One GPT (L=4, H=8, D=256, learned positions) on random ids, B=1, T=1024 by default. Times, in the
same run and on the same inputs:

    plain            model(ids): the fused "sdpa" kernel everywhere (the baseline)
    capture 1x1      run_with_capture(..., layers=[-1], heads=[0]): one pattern recomputed
    capture 1xH      one layer, every head
    capture LxH      every layer and head (the most a user can ask for)
    slow path        the reference: every layer runs the "naive" backend with need_weights=True,
                     i.e. the whole-model switch that capture avoids

and prints the median time (runs interleaved round-robin), the ratio to the plain forward and the
bytes the captured patterns occupy. On CUDA the peak allocated memory of each run is printed too.

    python benchmarks/interp_capture.py
    python benchmarks/interp_capture.py --seq-len 2048 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from attnlab.interp import run_with_capture
from attnlab.layers.attention import MultiHeadAttention
from attnlab.models import GPT, from_name


def timed(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int) -> dict[str, tuple[float, int]]:
    """{name: (median seconds, peak CUDA bytes or 0)}; the runs are interleaved round-robin after one
    warm-up each, so that drifting machine load affects every variant alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    peaks = dict.fromkeys(fns, 0)
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated())
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), peaks[name]) for name in fns}


def slow_path(model: GPT, ids: torch.Tensor) -> list[torch.Tensor]:
    """Every attention module computes its weights with the naive backend (the whole-model switch)."""
    weights: list[torch.Tensor] = []
    modules = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for m in modules:
        def forward(*args, _orig=m.forward, **kwargs):
            out, w = _orig(*args, **{**kwargs, "need_weights": True})
            weights.append(w)
            return out, w
        m.forward = forward
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for m in modules:
            del m.forward
    return weights


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = from_name("gpt2", n_layers=args.layers, n_heads=args.heads, d_model=args.d_model,
                       max_len=args.seq_len, vocab_size=1000, dropout=0.0, bos_id=None, eos_id=None)
    model = GPT(config).to(device).eval()
    ids = torch.randint(0, 1000, (1, args.seq_len), device=device)
    L, H = args.layers, args.heads

    def plain() -> None:
        with torch.no_grad():
            model(ids)

    runs = {
        "plain": (plain, 0),
        "capture 1x1": (partial(run_with_capture, model, ids, layers=[-1], heads=[0]), 1),
        f"capture 1x{H}": (partial(run_with_capture, model, ids, layers=[-1]), H),
        f"capture {L}x{H}": (partial(run_with_capture, model, ids), L * H),
        "slow path": (partial(slow_path, model, ids), L * H),
    }
    print(f"GPT L={L} H={H} D={args.d_model}, B=1, T={args.seq_len}, device={device}, torch {torch.__version__}")
    print(f"{'run':<16} {'median ms':>10} {'x plain':>8} {'patterns MiB':>13} {'peak MiB':>9}")
    results = timed({name: fn for name, (fn, _) in runs.items()}, device, args.repeats)
    base = results["plain"][0]
    for name, (_, n_patterns) in runs.items():
        seconds, peak = results[name]
        pattern_mib = n_patterns * args.seq_len**2 * 4 / 2**20
        print(f"{name:<16} {seconds * 1e3:>10.1f} {seconds / base:>8.2f} {pattern_mib:>13.1f} "
              f"{peak / 2**20 if peak else float('nan'):>9.1f}")

if __name__ == "__main__":
    main()
