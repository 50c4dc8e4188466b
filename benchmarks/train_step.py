"""Training throughput: attnlab (GPT + Trainer) against HF transformers' GPT-2, in one run.

Dimension key: B batch, T sequence length, D model width, L layers, V vocabulary, N parameters.

Both sides train the same architecture (built from one attnlab config) on the same random token
batches, already on the device, so data loading is not measured:

- attnlab: ``attnlab.models.GPT`` driven by ``attnlab.Trainer.train_step`` — autocast, fused AdamW
  with decay groups, gradient clipping with the pre-clip norm, the NaN/inf check, and (``--compile``)
  ``torch.compile`` of model + loss; attention through torch SDPA (flash kernels on CUDA in bf16).
- HF: ``transformers.GPT2LMHeadModel`` (``attn_implementation="sdpa"``) in a minimal loop: autocast,
  the model's own loss, fused AdamW, clipping, and ``torch.compile`` of the model with ``--compile``.

Reported per side: median step time, tokens/s, and model FLOPs utilization
``MFU = (6 N + 12 L D T) * tokens/s / peak`` (N without position embeddings, as in the PaLM
appendix and nanoGPT; peak from ``--peak-tflops``, default 989 = H100 SXM dense bf16 on CUDA, no
MFU on CPU unless given), then the attnlab / HF throughput ratio.

Examples::

    # the issue's setting on one H100: GPT-2 124M, B=16, T=1024, bf16, compiled
    python benchmarks/train_step.py --preset gpt2 --batch 16 --seq 1024 --precision bf16 --compile
    # a CPU smoke run
    python benchmarks/train_step.py --preset gpt-tiny --batch 4 --seq 64 --steps 5 --warmup 2 --device cpu \
        --precision fp32 --no-compile
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn


class _SameBatch:
    """A resumable stream that yields one fixed (B, T) batch forever (a ResumableBatches)."""

    def __init__(self, ids: Tensor) -> None:
        self.ids, self.index = ids, 0
        self.batch_spec = {"batch_size": ids.shape[0]}

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        while True:
            self.index += 1
            yield {"ids": self.ids}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": 0, "index": self.index, "seed": 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.index = state["index"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step: Callable[[], Any], device: torch.device, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):  # compilation and autotuning happen here
        step()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _attnlab_step(
    config: Any, ids: Tensor, args: argparse.Namespace, device: torch.device
) -> tuple[Callable[[], Any], nn.Module]:
    from attnlab.models.gpt import GPT
    from attnlab.training import LanguageModelingTask, Trainer

    torch.manual_seed(0)
    model = GPT(config)
    trainer = Trainer(
        model, LanguageModelingTask(), _SameBatch(ids), out_dir=tempfile.mkdtemp(prefix="attnlab-bench-"),
        device=str(device), precision=args.precision, compile=args.compile, compile_mode=args.compile_mode,
        tf32=args.tf32, lr=6e-4, weight_decay=0.1, schedule="constant", grad_clip=1.0, progress=False,
        tensorboard=False, resume="never", max_steps=10**9,
    )
    return trainer.train_step, model


def _hf_step(
    config: Any, ids: Tensor, args: argparse.Namespace, device: torch.device
) -> tuple[Callable[[], Any], nn.Module]:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf_config = GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.max_len, n_embd=config.d_model, n_layer=config.n_layers,
        n_head=config.n_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=config.bos_id, eos_token_id=config.eos_id,
    )
    hf_config._attn_implementation = "sdpa"
    model = GPT2LMHeadModel(hf_config).to(device)
    assert model.config._attn_implementation == "sdpa"
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95), fused=fused or None)
    forward = torch.compile(model, mode=args.compile_mode) if args.compile else model
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)

    def step() -> float:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # the same one host sync per step as the Trainer

    return step, model


def flops_per_token(config: Any, n_params: int, seq: int) -> float:
    """6 N (matmuls, forward + backward) + 12 L D T (attention scores and weighted sums)."""
    n = n_params - config.max_len * config.d_model  # without the position table
    return 6 * n + 12 * config.n_layers * config.d_model * seq


def _report(name: str, times: list[float], tokens: int, fpt: float, peak: float | None) -> float:
    med = statistics.median(times)
    tps = tokens / med
    mfu = f"{100 * fpt * tps / (peak * 1e12):5.1f}%" if peak else "  n/a"
    print(f"{name:<10} step {1000 * med:9.2f} ms   {tps:>12,.0f} tok/s   MFU {mfu}")
    return tps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="gpt2", help="attnlab GPT preset (gpt2 = 124M; gpt-tiny for CPU)")
    p.add_argument("--vocab", type=int, default=None, help="override vocab_size (e.g. 50304, a multiple of 64)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="bf16")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak for MFU (default 989 on CUDA)")
    p.add_argument("--only", choices=["attnlab", "hf"], default=None)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from attnlab.models.config import from_name

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    peak = args.peak_tflops or (989.0 if device.type == "cuda" else None)
    overrides = {"dropout": 0.0, "max_len": max(args.seq, 1)}
    if args.vocab:
        overrides["vocab_size"] = args.vocab
    config = from_name(args.preset, **overrides)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)
    tokens = args.batch * args.seq
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.preset} B={args.batch} T={args.seq} {args.precision} compile={args.compile} on {name}, "
          f"torch {torch.__version__}")
    results = {}
    for side, build in (("attnlab", _attnlab_step), ("hf", _hf_step)):
        if args.only and side != args.only:
            continue
        step, model = build(config, ids, args, device)
        n_params = sum(p.numel() for p in model.parameters())
        times = _time_steps(step, device, args.warmup, args.steps)
        results[side] = _report(side, times, tokens, flops_per_token(config, n_params, args.seq), peak)
        del step, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if len(results) == 2:
        print(f"ratio attnlab / hf: {results['attnlab'] / results['hf']:.2f}x")


if __name__ == "__main__":
    main()
