"""Attention scaling: time, peak memory and approximation error of exact and efficient backends.

Dimension key: B batch, H heads, T sequence length, Dh head dim, V vocabulary.

Two parts:

``scaling``  one attention call (forward) for T = 256 .. 16,384 with B=1, H=4, Dh=64, for the
             exact backends "naive" (the reference formula) and "sdpa" (torch's fused kernels, the
             reference this script compares against) and the efficient ones: sliding window
             (w=256), Linformer (P=256 with its "pool" initialization, since the model is untrained;
             bidirectional only), Performer (M=256 features). Reports the
             median time, the peak memory the call allocates (CUDA: max_memory_allocated; CPU: the
             torch profiler's allocation timeline), the time ratio to sdpa, and the relative error
             ||out - exact|| / ||exact|| against exact attention on the same random inputs. A
             backend stops growing T once one call exceeds --call-budget seconds or its predicted
             memory exceeds --max-mem-gb. Plots the three on log axes.
``lm``       a small character-level GPT on tiny Shakespeare, trained for the same number of
             steps on the same batches with each causal backend; validation loss at equal steps.

Examples::

    python benchmarks/attention_scaling.py scaling --modes bidirectional causal
    python benchmarks/attention_scaling.py scaling --device cuda --max-len 65536
    python benchmarks/attention_scaling.py lm --steps 150
    python benchmarks/attention_scaling.py all --figure benchmarks/figures/attention_scaling.png

Inputs are i.i.d. Gaussian (queries and keys times --input-std), which makes softmax attention
spread out: a hard case for local (sliding window) and low-rank (Linformer, untrained random
projections) approximations, and for Performer, whose estimator variance grows like
exp(|q|²·scale + |k|²·scale). The error column measures distance from full attention, not the quality
of a trained model; the "uniform attention" row (the mean of the visible values) is a yardstick: an
error above it is worse than ignoring the scores altogether.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from attnlab.core.attention import attention
from attnlab.efficient import (
    LinformerAttention,
    PerformerAttention,
    SlidingWindowAttention,
)

REPO = Path(__file__).resolve().parents[1]
WINDOW, PROJ_LEN, FEATURES = 256, 256, 256
UNIFORM = "uniform attention (yardstick)"


# --------------------------------------------------------------------------------------------
# measuring one call
# --------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Tensor], device: torch.device, min_repeats: int = 3, min_seconds: float = 0.3) -> float:
    """Median wall time of ``fn`` in seconds, after one warm-up call."""
    fn()
    sync(device)
    times: list[float] = []
    while len(times) < min_repeats or (sum(times) < min_seconds and len(times) < 50):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bytes(fn: Callable[[], Tensor], device: torch.device) -> int:
    """Peak memory allocated during ``fn`` beyond what was live before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):  # allocation timeline
        current += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


# --------------------------------------------------------------------------------------------
# the scaling sweep
# --------------------------------------------------------------------------------------------


@dataclass
class Point:
    mode: str
    backend: str
    T: int
    seconds: float | None = None
    peak_mb: float | None = None
    rel_error: float | None = None
    ratio_to_sdpa: float | None = None
    note: str = ""


def backends_for(mode: str, T: int, Dh: int, device: torch.device, dtype: torch.dtype) -> dict[str, Callable]:
    """name -> fn(q, k, v) -> out (B, H, T, Dh) for one sequence length."""
    causal = mode == "causal"
    variants: dict[str, object] = {
        "naive": "naive",
        "sdpa": "sdpa",
        f"sliding_window(w={WINDOW})": SlidingWindowAttention(WINDOW),
        f"performer(M={FEATURES})": PerformerAttention(Dh, n_features=FEATURES).to(device, dtype),
    }
    if not causal:  # Linformer is non-causal by construction
        linformer = LinformerAttention(max_len=T, proj_len=PROJ_LEN, init="pool")  # untrained: pooled segments
        variants[f"linformer(P={PROJ_LEN}, pool)"] = linformer.to(device, dtype)

    def run(backend: object) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
        return lambda q, k, v: attention(q, k, v, backend=backend, is_causal=causal)[0]  # type: ignore[arg-type]

    return {name: run(b) for name, b in variants.items()}


def predicted_bytes(name: str, B: int, H: int, T: int, elem: int) -> float:
    """A rough peak for the quadratic backends (scores + probabilities + mask), for skipping."""
    if name == "naive":
        return 3.0 * B * H * T * T * elem
    return 0.0


@torch.no_grad()
def sweep(mode: str, lengths: list[int], device: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> list[Point]:
    B, H, Dh = 1, 4, 64
    elem = torch.finfo(dtype).bits // 8
    stopped: dict[str, str] = {}
    points: list[Point] = []
    bar = tqdm(total=len(lengths) * 5, desc=f"scaling ({mode}, {device.type})", unit="call")
    for T in lengths:
        gen = torch.Generator(device="cpu").manual_seed(T)
        q, k, v = (torch.randn(B, H, T, Dh, generator=gen).to(device, dtype) for _ in range(3))
        q, k = q * args.input_std, k * args.input_std
        exact = None
        if T <= args.error_max_len:
            exact = attention(q.double(), k.double(), v.double(), backend="sdpa", is_causal=mode == "causal")[0]
            points.append(Point(mode, UNIFORM, T, rel_error=float((uniform(v, mode) - exact).norm() / exact.norm())))
        reference_time = None
        for name, fn in backends_for(mode, T, Dh, device, dtype).items():
            bar.update(1)
            point = Point(mode, name, T)
            points.append(point)
            if name in stopped:
                point.note = stopped[name]
                continue
            if predicted_bytes(name, B, H, T, elem) > args.max_mem_gb * 2**30:
                point.note = stopped[name] = f"skipped: needs > {args.max_mem_gb:g} GB"
                continue
            call = partial(fn, q, k, v)
            point.seconds = time_call(call, device)
            point.peak_mb = peak_bytes(call, device) / 2**20
            if exact is not None:
                out = call().double()
                point.rel_error = float((out - exact).norm() / exact.norm())
            if name == "sdpa":
                reference_time = point.seconds
            if point.seconds > args.call_budget:
                stopped[name] = f"stopped: a call took > {args.call_budget:g} s"
            bar.set_postfix_str(f"T={T} {name}: {point.seconds * 1e3:.1f} ms")
        for point in points:
            if point.T == T and point.seconds is not None and reference_time:
                point.ratio_to_sdpa = point.seconds / reference_time
    bar.close()
    return points


def uniform(v: Tensor, mode: str) -> Tensor:
    """Uniform attention (the mean of the visible values), in float64: a yardstick for the error column."""
    v = v.double()
    if mode == "causal":
        return v.cumsum(dim=2) / torch.arange(1, v.shape[2] + 1, device=v.device, dtype=v.dtype)[:, None]
    return v.mean(dim=2, keepdim=True).expand_as(v)


def scaling_table(points: list[Point]) -> str:
    lines = [
        "| mode | backend | T | time (ms) | x sdpa time | peak MiB | rel. error vs exact |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        if p.backend == UNIFORM:
            lines.append(f"| {p.mode} | {p.backend} | {p.T} | | | | {p.rel_error:.2e} |")
            continue
        if p.seconds is None:
            lines.append(f"| {p.mode} | {p.backend} | {p.T} | {p.note} | | | |")
            continue
        err = "" if p.rel_error is None else f"{p.rel_error:.2e}"
        ratio = "" if p.ratio_to_sdpa is None else f"{p.ratio_to_sdpa:.2f}"
        lines.append(f"| {p.mode} | {p.backend} | {p.T} | {p.seconds * 1e3:.2f} | {ratio} | {p.peak_mb:.1f} | {err} |")
    return "\n".join(lines)


def plot(points: list[Point], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({p.mode for p in points})
    fig, axes = plt.subplots(len(modes), 3, figsize=(13, 3.4 * len(modes)), squeeze=False)
    panels = [("seconds", "time per call (s)"), ("peak_mb", "peak memory (MiB)"), ("rel_error", "relative error vs exact")]
    for row, mode in enumerate(modes):
        for col, (field, label) in enumerate(panels):
            ax = axes[row][col]
            for name in dict.fromkeys(p.backend for p in points if p.mode == mode):
                xs = [(p.T, getattr(p, field)) for p in points if p.mode == mode and p.backend == name]
                xs = [(t, y) for t, y in xs if y is not None and y > 0]
                if xs:
                    style = {"color": "grey", "ls": "--"} if name == UNIFORM else {"marker": "o", "ms": 3}
                    ax.plot(*zip(*xs), label=name, **style)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length T")
            ax.set_title(f"{label} — {mode}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        axes[row][2].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=60, pil_kwargs={"optimize": True})  # small enough to commit
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# the language-model comparison
# --------------------------------------------------------------------------------------------


def data_dir() -> Path:
    env = os.environ.get("ATTNLAB_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def shakespeare(device: torch.device) -> tuple[Tensor, Tensor, int]:
    """(train ids, validation ids, vocabulary size): characters, split 90/10 as in nanoGPT."""
    path = data_dir() / "tinyshakespeare.txt"
    if not path.exists():
        raise SystemExit(f"tiny Shakespeare not found at {path}; set ATTNLAB_DATA to the folder holding it")
    text = path.read_text(encoding="utf-8")
    vocab = {ch: i for i, ch in enumerate(sorted(set(text)))}
    ids = torch.tensor([vocab[ch] for ch in text], dtype=torch.long, device=device)
    split = int(0.9 * len(ids))
    return ids[:split], ids[split:], len(vocab)


def batches(ids: Tensor, n: int, batch: int, ctx: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        starts = torch.randint(0, len(ids) - ctx - 1, (batch,), generator=gen)
        x = torch.stack([ids[s : s + ctx] for s in starts])  # (B, T)
        y = torch.stack([ids[s + 1 : s + ctx + 1] for s in starts])
        out.append((x, y))
    return out


def train_lm(backend: str, data: tuple[Tensor, Tensor, int], args: argparse.Namespace) -> dict[str, float | str]:
    from attnlab.models.gpt import GPT, GPTConfig

    train_ids, val_ids, vocab = data
    cfg = GPTConfig(
        vocab_size=vocab, n_layers=args.lm_layers, n_heads=4, d_model=args.lm_width, max_len=args.lm_ctx,
        dropout=0.0, bos_id=None, eos_id=None, backend=backend,
    )
    torch.manual_seed(0)  # the same initial weights for every backend
    model = GPT(cfg).to(train_ids.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    train = batches(train_ids, args.steps, args.lm_batch, args.lm_ctx, seed=1)
    start = time.perf_counter()
    loss = torch.tensor(0.0)
    for x, y in tqdm(train, desc=f"lm {backend}", unit="step", leave=False):
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = (time.perf_counter() - start) / args.steps
    model.eval()
    with torch.no_grad():
        val = [F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1)).item()
               for x, y in batches(val_ids, args.val_batches, args.lm_batch, args.lm_ctx, seed=2)]
    return {"backend": backend, "val_loss": statistics.mean(val), "train_loss": float(loss), "s_per_step": seconds}


def lm_table(rows: list[dict[str, float | str]]) -> str:
    ref = next(float(r["s_per_step"]) for r in rows if r["backend"] == "sdpa")
    lines = ["| backend | val loss | last train loss | s/step | x sdpa time |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {float(r['val_loss']):.3f} | {float(r['train_loss']):.3f} | "
            f"{float(r['s_per_step']):.3f} | {float(r['s_per_step']) / ref:.2f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["scaling", "lm", "all"])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--modes", nargs="+", default=["bidirectional", "causal"], choices=["bidirectional", "causal"])
    p.add_argument("--min-len", type=int, default=256)
    p.add_argument("--max-len", type=int, default=16384)
    p.add_argument("--call-budget", type=float, default=None, help="stop growing T after a call this slow (s)")
    p.add_argument("--max-mem-gb", type=float, default=None, help="skip a backend predicted to need more")
    p.add_argument("--error-max-len", type=int, default=None, help="compute the error up to this T")
    p.add_argument("--input-std", type=float, default=1.0, help="std of the random queries and keys")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--figure", type=Path, default=REPO / "benchmarks" / "figures" / "attention_scaling.png")
    p.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--lm-batch", type=int, default=16)
    p.add_argument("--lm-ctx", type=int, default=128)
    p.add_argument("--lm-width", type=int, default=128)
    p.add_argument("--lm-layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-batches", type=int, default=20)
    p.add_argument(
        "--lm-backends", nargs="+",
        default=["sdpa", "sliding_window:window=32", "performer:n_features=64"],
    )
    args = p.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.device = torch.device("cuda" if cuda else "cpu")
    args.call_budget = args.call_budget or (30.0 if cuda else 4.0)
    args.max_mem_gb = args.max_mem_gb or (40.0 if cuda else 6.0)
    args.error_max_len = args.error_max_len or (16384 if cuda else 4096)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device, dtype = args.device, getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"# attention_scaling on {where}, torch {torch.__version__}, {args.dtype}, query/key std {args.input_std}")
    record: dict[str, object] = {"device": where, "torch": torch.__version__, "dtype": args.dtype}
    if args.part in ("scaling", "all"):
        lengths = [2**i for i in range(int(math.log2(args.min_len)), int(math.log2(args.max_len)) + 1)]
        points = [p for mode in args.modes for p in sweep(mode, lengths, device, dtype, args)]
        print(scaling_table(points))
        plot(points, args.figure, f"attention forward, B=1 H=4 Dh=64, {args.dtype}, q/k std {args.input_std}, {where}")
        print(f"figure: {args.figure}")
        record["scaling"] = [asdict(p) for p in points]
    if args.part in ("lm", "all"):
        data = shakespeare(device)
        rows = [train_lm(b, data, args) for b in args.lm_backends]
        print(f"\ntiny Shakespeare, char GPT {args.lm_layers}x{args.lm_width}, ctx {args.lm_ctx}, "
              f"batch {args.lm_batch}, {args.steps} steps, AdamW lr {args.lr}")
        print(lm_table(rows))
        record["lm"] = rows
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
