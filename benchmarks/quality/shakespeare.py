"""Tiny Shakespeare, character level: validation loss of nanoGPT's two settings (targets 1.88 CPU, 1.47 GPU).

Dimension key: B batch, T context, V vocabulary (65 characters + 4 specials).

    python benchmarks/quality/shakespeare.py --setting cpu          # 4 layers, 4 heads, 128 wide, T=64, B=12,
                                                                    # 2000 steps, lr 1e-3, dropout 0 (target <= 1.88)
    python benchmarks/quality/shakespeare.py --setting cpu --set positional=learned   # nanoGPT's positions
    python benchmarks/quality/shakespeare.py --setting gpu          # 6/6/384, T=256, B=64, dropout 0.2, 5000 steps
                                                                    # (target <= 1.47, on one H100)

Both presets use rotary positions (RoPE); ``--set positional=learned`` trains nanoGPT's learned
absolute positions instead (same model otherwise). Validation follows nanoGPT's estimate_loss: the
last 10 % of the characters, mean loss over 200 batches of random windows (drawn once, with a fixed
seed). The trained model folder is kept in --out. ``nanogpt_reference.py`` trains nanoGPT's recipe in
plain PyTorch (no attnlab) on the same split, as an outside check of the learned-position figure.
"""

from __future__ import annotations

import argparse
import time

from _common import data_dir, report

from attnlab.tasks.common import load_model
from attnlab.tasks.lm import sample_text, train_lm

TARGETS = {"cpu": 1.88, "gpu": 1.47}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", choices=sorted(TARGETS), default="cpu")
    ap.add_argument("--out", default=None, help="run folder (default /tmp/attnlab-shakespeare-SETTING)")
    ap.add_argument("--steps", type=int, default=None, help="override the number of steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    ap.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                    help="override recipe fields, e.g. positional=learned seed=1338")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    text = data_dir() / "tinyshakespeare.txt"
    out = args.out or f"/tmp/attnlab-shakespeare-{args.setting}"
    start = time.perf_counter()
    info = train_lm(text, out, recipe=f"char-{args.setting}", device=args.device, progress=not args.no_progress,
                    max_steps=args.steps, **_overrides(args.set))
    model, tok, _ = load_model(out, device="cuda" if args.device != "cpu" and _cuda() else "cpu")
    sample = sample_text(model, tok, "ROMEO:", max_new_tokens=300, seed=0)
    report(f"shakespeare-char-{args.setting}", {
        "val_loss": round(info["val_loss"], 4), "target": f"<= {TARGETS[args.setting]}",
        "met": info["val_loss"] <= TARGETS[args.setting], "steps": info["step"],
        "train_seconds": round(info["train_seconds"], 1), "total_seconds": round(time.perf_counter() - start, 1),
        "recipe": info["recipe"], "sample": sample, "model_dir": out,
    }, args.json)


def _overrides(pairs: list[str]) -> dict[str, object]:
    """``["seed=1338", "positional=learned"]`` -> typed recipe overrides (ints and floats parsed)."""
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects NAME=VALUE, got {pair!r}")
        value: object = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        out[name] = value
    return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
