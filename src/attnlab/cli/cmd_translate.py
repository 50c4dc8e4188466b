"""``attnlab translate``: translate sentences with a trained translation model folder; optional sacreBLEU.

Dimension key: none (command-line glue over :mod:`attnlab.tasks.translation`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  attnlab translate --model runs/en-de "A man is riding a bicycle."
  attnlab translate --model runs/en-de --input test.en.gz --ref test.de.gz            # prints sacreBLEU
  attnlab translate --model runs/en-de --input test.en --greedy --output hyp.de
  echo "Two dogs play in the snow." | attnlab translate --model runs/en-de --input -

Outputs are detokenized plain text, one line per input line, in input order. BLEU is sacreBLEU's
corpus score (13a tokenization) against one reference per line.
"""


def _run(args: argparse.Namespace) -> int:
    from attnlab.data import read_lines
    from attnlab.tasks.common import lines_or_text, load_model, resolve_device
    from attnlab.tasks.translation import bleu, translate

    sources = lines_or_text(args.text, args.input)
    refs = read_lines(args.ref) if args.ref else None
    if refs is not None and len(refs) != len(sources):
        raise ValueError(f"{args.ref} has {len(refs)} lines but there are {len(sources)} inputs; they must be aligned")
    model, tok, info = load_model(args.model, device=resolve_device(args.device))
    beams = 1 if args.greedy else (args.beams or info.get("recipe", {}).get("num_beams", 4))
    hyps = translate(model, tok, sources, num_beams=beams, batch_size=args.batch_size, progress=args.progress)
    if args.output:
        Path(args.output).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    else:
        for h in hyps:
            print(h)
    if refs is not None:
        print(f"sacreBLEU = {bleu(hyps, refs):.2f} ({'greedy' if beams == 1 else f'beam {beams}'}, "
              f"{len(hyps)} sentences)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "translate", help="translate text with a trained translation model",
        description="Translate TEXT arguments or the lines of --input with a translation model folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("text", nargs="*", help="sentences to translate (or use --input)")
    p.add_argument("--model", required=True, help="model folder written by `attnlab train translate`")
    p.add_argument("--input", help="a file with one sentence per line (plain or .gz; '-' reads stdin)")
    p.add_argument("--ref", help="reference translations, aligned with the input: print sacreBLEU")
    p.add_argument("--output", help="write the translations here instead of printing them")
    p.add_argument("--beams", type=int, help="beam size (default: the model's training recipe, usually 4)")
    p.add_argument("--greedy", action="store_true", help="greedy decoding (beam size 1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_run)
