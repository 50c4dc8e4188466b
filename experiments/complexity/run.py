"""Experiment: self-attention costs O(n^2 d) time and, when the weights are materialized, O(n^2) memory.

Claim (Vaswani et al. 2017, table 1): a self-attention layer costs O(n^2 d) operations per layer, versus
O(n d^2) for a recurrent layer; memory for the attention matrix grows as n^2.

For n from 128 upward we time one forward of the attention function (naive: materializes the n x n
weights; sdpa: torch's fused kernel) and measure its peak memory in a fresh subprocess (CPU: peak
resident set size above the inputs, via /proc/self/clear_refs and VmHWM; CUDA: max_memory_allocated). The fitted log-log slope is compared
with the prediction (time exponent 2 for fixed d, memory exponent 2 for naive). The efficient
backends have their own, longer sweep in benchmarks/attention_scaling.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import device, write_results  # noqa: E402

from attnlab.core.attention import attention  # noqa: E402

HERE = Path(__file__).resolve().parent
H, D = 4, 64

_MEMORY_PROBE = r"""
import json, sys, torch
from attnlab.core.attention import attention
n, backend, dev = int(sys.argv[1]), sys.argv[2], sys.argv[3]
q, k, v = (torch.randn(1, {H}, n, {D}, device=dev) for _ in range(3))
if dev == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    attention(q, k, v, backend=backend, is_causal=True); torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
else:  # reset the kernel's high-water mark, then read it back (Linux /proc)
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    open("/proc/self/clear_refs", "w").write("5")
    base = status("VmRSS")
    attention(q, k, v, backend=backend, is_causal=True)
    peak = status("VmHWM") - base
print(json.dumps(peak))
""".replace("{H}", str(H)).replace("{D}", str(D))


def peak_memory(n: int, backend: str, dev: str) -> float:
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(n), backend, dev], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def time_forward(n: int, backend: str, dev: torch.device, repeats: int) -> float:
    q, k, v = (torch.randn(1, H, n, D, device=dev) for _ in range(3))
    attention(q, k, v, backend=backend, is_causal=True)  # warm up
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        attention(q, k, v, backend=backend, is_causal=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def slope(ns: list[int], ys: list[float]) -> float:
    """Least-squares exponent over the upper half of the lengths (small n is overhead-dominated)."""
    half = len(ns) // 2
    return float(np.polyfit(np.log(ns[half:]), np.log(np.maximum(ys[half:], 1e-12)), 1)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="lengths up to 16384 (GPU)")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    dev = device()
    ns = [128 * 2**i for i in range(8 if args.full else 6)]  # to 16384 or 4096
    res: dict = {"n": ns, "device": str(dev)}
    for backend in ("naive", "sdpa"):
        res[f"time_{backend}"] = [time_forward(n, backend, dev, repeats=5) for n in ns]
        res[f"memory_{backend}"] = [peak_memory(n, backend, dev.type) for n in ns]
        res[f"time_slope_{backend}"] = slope(ns, res[f"time_{backend}"])
        res[f"memory_slope_{backend}"] = slope(ns, res[f"memory_{backend}"])
    flops = [4 * H * n * n * D for n in ns]  # two (n x n x d) matmuls per head, multiply-adds counted as 2
    rate = flops[-1] / res["time_naive"][-1]
    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    for backend, style in (("naive", "o-"), ("sdpa", "s-")):
        ax[0].plot(ns, res[f"time_{backend}"], style, label=f"{backend} (slope {res[f'time_slope_{backend}']:.2f})")
        ax[1].plot(ns, np.array(res[f"memory_{backend}"]) / 2**20, style, label=f"{backend} (slope {res[f'memory_slope_{backend}']:.2f})")
    ax[0].plot(ns, [f / rate for f in flops], "k:", label="O(n^2 d) prediction")
    ax[1].plot(ns, [4 * H * n * n / 2**20 for n in ns], "k:", label="one fp32 n x n matrix per head")
    ax[0].set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="seconds per forward", title=f"time ({dev})")
    ax[1].set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="peak MiB", title="memory")
    for a in ax:
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "complexity.png", dpi=90)
    plt.close(fig)
    write_results(args.out, res)
    print(f"{'n':>6} {'naive s':>10} {'sdpa s':>10} {'naive MiB':>10} {'sdpa MiB':>10}")
    for i, n in enumerate(ns):
        print(f"{n:>6} {res['time_naive'][i]:10.4f} {res['time_sdpa'][i]:10.4f} "
              f"{res['memory_naive'][i] / 2**20:10.1f} {res['memory_sdpa'][i] / 2**20:10.1f}")
    for backend in ("naive", "sdpa"):
        print(f"{backend}: time exponent {res[f'time_slope_{backend}']:.2f}, memory exponent {res[f'memory_slope_{backend}']:.2f}")
    print(f"figure: {args.out / 'complexity.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
