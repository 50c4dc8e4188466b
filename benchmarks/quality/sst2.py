"""SST-2 sentiment: fine-tune the real pretrained all-MiniLM-L6-v2 and report dev accuracy (target >= 88 %).

Dimension key: B batch, T text length (max 64 tokens).

    python benchmarks/quality/sst2.py --out /tmp/sst2-minilm                 # CPU: a 20k-example subset
    python benchmarks/quality/sst2.py --out /tmp/sst2-minilm --subset 0      # one full epoch (63k examples)

The fine-tuned model is saved in HF format (config.json with id2label, model.safetensors, tokenizer.json), and
the script re-scores the dev set through ``transformers.pipeline("sentiment-analysis", model=OUT)`` when
transformers is installed, to show that HF loads and uses the same weights.
"""

from __future__ import annotations

import argparse
import time

from _common import data_dir, report

from attnlab.tasks.classification import train_classifier


def hf_pipeline_accuracy(folder: str, dev_tsv: str) -> float | None:
    try:
        from transformers import pipeline
    except ImportError:
        return None
    from attnlab.data import read_classification_tsv

    texts, labels, _ = read_classification_tsv(dev_tsv)
    clf = pipeline("sentiment-analysis", model=folder, device=-1)
    preds = clf(texts, batch_size=64, truncation=True, max_length=64)
    names = {"0": "negative", "1": "positive"}
    return sum(p["label"] == names[g] for p, g in zip(preds, labels)) / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/sst2-minilm", help="where the fine-tuned model folder goes")
    ap.add_argument("--subset", type=int, default=20000, help="first N training examples (0: all 63,349)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    root = data_dir()
    start = time.perf_counter()
    info = train_classifier(
        root / "sst2" / "train.tsv", args.out, valid=root / "sst2" / "dev.tsv", recipe="minilm",
        label_names=["negative", "positive"], device=args.device, progress=not args.no_progress,
        train_subset=args.subset or None, batch_size=args.batch_size, lr=args.lr, max_len=args.max_len,
        warmup_steps=60,
    )
    hf_acc = hf_pipeline_accuracy(args.out, str(root / "sst2" / "dev.tsv"))
    report("sst2-minilm", {
        "dev_accuracy": info.get("val_accuracy"), "hf_pipeline_dev_accuracy": hf_acc, "steps": info["step"],
        "train_examples": args.subset or 63349, "train_seconds": round(info["train_seconds"], 1),
        "total_seconds": round(time.perf_counter() - start, 1), "model_dir": args.out, "target": ">= 0.88",
    }, args.json)


if __name__ == "__main__":
    main()
