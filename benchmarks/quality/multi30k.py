"""Multi30k en->de (or en->fr): a Transformer trained from scratch with a joint BPE vocabulary; sacreBLEU on
test_2016_flickr with greedy and beam search (target >= 36 BLEU for en->de with the GPU setting).

Dimension key: B batch, S source length, T target length, V joint vocabulary.

    python benchmarks/quality/multi30k.py --setting cpu --time-budget 13      # CPU-sized: 2+2 layers, 128 wide
    python benchmarks/quality/multi30k.py --setting gpu                        # 6+6 layers, 512 wide, 15k steps
    python benchmarks/quality/multi30k.py --pair en-fr --setting gpu

Outputs are detokenized (byte-level BPE decodes to the exact text) and scored against the raw references
with sacreBLEU's defaults (13a tokenization, case-sensitive), as the published 35-38 BLEU figures are.
"""

from __future__ import annotations

import argparse
import time

from _common import data_dir, report

from attnlab.data import read_parallel
from attnlab.tasks.common import load_model, resolve_device
from attnlab.tasks.translation import bleu, train_translation, translate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", choices=["en-de", "en-fr"], default="en-de")
    ap.add_argument("--setting", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--out", default=None, help="run folder (default /tmp/attnlab-multi30k-PAIR-SETTING)")
    ap.add_argument("--steps", type=int, default=None, help="override the number of steps")
    ap.add_argument("--time-budget", type=float, default=None, metavar="MIN", help="stop training after MIN minutes")
    ap.add_argument("--beams", type=int, default=None, help="beam size (default: the recipe's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    root = data_dir() / "multi30k"
    src, tgt = args.pair.split("-")
    out = args.out or f"/tmp/attnlab-multi30k-{args.pair}-{args.setting}"
    start = time.perf_counter()
    info = train_translation(
        [root / f"train.{src}.gz", root / f"train.{tgt}.gz"], out,
        valid=[root / f"val.{src}.gz", root / f"val.{tgt}.gz"], recipe=f"multi30k-{args.setting}",
        device=args.device, progress=not args.no_progress, max_steps=args.steps, bleu_limit=200,
        time_budget=args.time_budget * 60 if args.time_budget else None,
    )
    model, tok, _ = load_model(out, device=resolve_device(args.device))
    sources, refs = read_parallel(root / f"test_2016_flickr.{src}.gz", root / f"test_2016_flickr.{tgt}.gz")
    beams = args.beams or info["recipe"]["num_beams"]
    scores = {}
    for name, k in (("greedy", 1), (f"beam{beams}", beams)):
        t = time.perf_counter()
        hyps = translate(model, tok, sources, num_beams=k, progress=not args.no_progress)
        scores[name] = {"bleu": round(bleu(hyps, refs), 2), "decode_seconds": round(time.perf_counter() - t, 1)}
        if k == beams:
            examples = [{"src": s, "hyp": h, "ref": r} for s, h, r in list(zip(sources, hyps, refs))[:3]]
    report(f"multi30k-{args.pair}-{args.setting}", {
        "test_2016_flickr": scores, "val_loss": round(info.get("val_loss", float("nan")), 4),
        "steps": info["step"], "finished": info["finished"], "train_seconds": round(info["train_seconds"], 1),
        "total_seconds": round(time.perf_counter() - start, 1), "recipe": info["recipe"],
        "target": ">= 36 BLEU (en-de, GPU setting)", "examples": examples, "model_dir": out,
    }, args.json)


if __name__ == "__main__":
    main()
