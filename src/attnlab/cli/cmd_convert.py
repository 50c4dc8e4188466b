"""``attnlab convert``: re-write an HF-format checkpoint through attnlab (e.g. pickle -> safetensors).

Dimension key: none (command-line glue over :mod:`attnlab.interop`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

EPILOG = """examples:
  attnlab convert old-gpt2/ gpt2-safe/ --allow-pickle        # pytorch_model.bin -> model.safetensors
  attnlab convert bert-dir/ bert-fp16/ --dtype float16        # a half-precision copy
  attnlab convert big-model/ sharded/ --shard-mb 500           # shards + model.safetensors.index.json

The source is loaded into attnlab's own classes (so it is validated: every weight must map) and
saved as an HF-format directory that transformers loads. Tokenizer files are copied alongside.
"""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "merges.txt")
DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def _run(args: argparse.Namespace) -> int:
    import torch

    from attnlab.interop.api import from_pretrained, resolve_path, save_pretrained

    src = resolve_path(args.source)
    dst = Path(args.dest)
    if dst.resolve() == src.resolve():
        raise ValueError("source and destination are the same folder; pick a new destination")
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = from_pretrained(src, allow_pickle=args.allow_pickle, dtype=dtype)
    shard = None if args.shard_mb is None else int(args.shard_mb * 1024 * 1024)
    save_pretrained(model, dst, max_shard_bytes=shard)
    copied = [name for name in TOKENIZER_FILES if (src / name).is_file()]
    for name in copied:
        shutil.copyfile(src / name, dst / name)
    print(f"wrote {type(model).__name__} ({model.num_parameters():,} parameters) to {dst}"
          + (f"; copied {', '.join(copied)}" if copied else ""))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="re-write an HF-format checkpoint as validated safetensors",
        description="Load SOURCE (an HF-format folder) into attnlab and save it to DEST in HF format.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="folder with config.json and weights (or a hub id when online)")
    p.add_argument("dest", help="output folder (created if missing)")
    p.add_argument("--allow-pickle", action="store_true", help="accept pytorch_model.bin (read with weights_only)")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="cast the weights")
    p.add_argument("--shard-mb", type=float, help="split the weights into shards of at most this many MB")
    p.set_defaults(func=_run)
