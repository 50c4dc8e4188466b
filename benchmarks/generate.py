"""Decode speed: attnlab ``generate`` vs HF transformers ``generate`` on GPT-2 124M, same weights.

Dimension key: B batch, P prompt length, N new tokens.

Both models get the same random GPT-2 124M weights (HF model built from ``GPT2Config()``, saved,
and loaded into attnlab with ``attnlab.from_pretrained``), the same (B, P) random prompts, greedy
decoding, and exactly N new tokens (eos ignored). Prints tokens/s (B * N / seconds) for each and
the ratio attnlab / HF, per batch size.

    python benchmarks/generate.py                          # issue settings: B 1 and 32, P 32, N 256
    python benchmarks/generate.py --batch-sizes 1 --new-tokens 64 --hf-new-tokens 64   # a short CPU run

The attnlab side uses its fast path by default (``compile=True``: static KV cache and a compiled
decode step; CUDA graphs on GPU, column-major GEMV weights on CPU); ``--no-compile`` times the
eager KV-cached loop instead. dtype defaults to bf16 on CUDA and fp32 on CPU. Compilation happens
in the untimed warm-up run (about 20 s on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--hf-new-tokens", type=int, default=None, help="N for HF (default: --new-tokens)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="attnlab's compiled static-cache decode step (default: on)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per setting, attnlab and HF interleaved (best is reported)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    return p.parse_args(argv)


def build_models(device: str, dtype: torch.dtype):
    import transformers

    import attnlab

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = attnlab.from_pretrained(d)
    hf = hf.to(device=device, dtype=dtype).eval()
    ours = ours.to(device=device, dtype=dtype).eval()
    return hf, ours


def _wall(fn: Callable[[], object], device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], device: str, repeats: int) -> tuple[float, float]:
    """Best wall times of a and b after one warm-up each, runs interleaved (a, b, a, b, ...) so
    that a machine whose load drifts slows both sides alike."""
    fn_a(), fn_b()
    best_a = best_b = float("inf")
    for _ in range(repeats):
        best_a = min(best_a, _wall(fn_a, device))
        best_b = min(best_b, _wall(fn_b, device))
    return best_a, best_b


def bench_batch(hf, ours, args: argparse.Namespace, B: int, use_compile: bool) -> tuple[float, float]:
    from attnlab.generation import generate

    ids = torch.randint(0, 50000, (B, args.prompt_len), device=args.device)
    mask = torch.ones_like(ids)
    n_ours, n_hf = args.new_tokens, args.hf_new_tokens or args.new_tokens

    def run_ours() -> None:
        out = generate(ours, ids, max_new_tokens=n_ours, ignore_eos=True, compile=use_compile)
        assert out.new_tokens.shape == (B, n_ours)

    def run_hf() -> None:
        out = hf.generate(
            ids, attention_mask=mask, max_new_tokens=n_hf, min_new_tokens=n_hf, do_sample=False,
            eos_token_id=None, pad_token_id=50256,
        )
        assert out.shape == (B, args.prompt_len + n_hf)

    with torch.no_grad():
        t_ours, t_hf = timed_pair(run_ours, run_hf, args.device, args.repeats)
    return B * n_ours / t_ours, B * n_hf / t_hf


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    use_compile = args.compile
    hf, ours = build_models(args.device, dtype)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"GPT-2 124M random weights | {name} | {dtype} | torch {torch.__version__} | prompt {args.prompt_len} | "
          f"new tokens attnlab {args.new_tokens}, HF {args.hf_new_tokens or args.new_tokens} | "
          f"attnlab compile={use_compile}")
    print(f"{'batch':>5} {'attnlab tok/s':>14} {'HF tok/s':>10} {'ratio':>7}")
    for B in args.batch_sizes:
        ours_tps, hf_tps = bench_batch(hf, ours, args, B, use_compile)
        print(f"{B:>5} {ours_tps:>14,.1f} {hf_tps:>10,.1f} {ours_tps / hf_tps:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
