"""``attnlab classify``: label texts with a trained classifier folder; accuracy on a labelled TSV.

Dimension key: none (command-line glue over :mod:`attnlab.tasks.classification`).
"""

from __future__ import annotations

import argparse

EPILOG = """examples:
  attnlab classify --model runs/sst2 "a gripping, beautifully acted film" "ninety minutes of tedium"
  attnlab classify --model runs/sst2 --input reviews.txt             # one text per line
  attnlab classify --model runs/sst2 --eval dev.tsv                  # accuracy on label<TAB>text lines

Each prediction prints as LABEL<TAB>PROBABILITY<TAB>TEXT. The folder is one written by
`attnlab train classify` (an HF BertForSequenceClassification checkpoint with its tokenizer).
"""


def _run(args: argparse.Namespace) -> int:
    from attnlab.tasks.classification import accuracy, predict
    from attnlab.tasks.common import lines_or_text, load_model, resolve_device

    model, tok, info = load_model(args.model, device=resolve_device(args.device))
    max_len = args.max_len or info.get("recipe", {}).get("max_len", 128)
    if args.eval:
        id2label = model.config.id2label  # type: ignore[union-attr]
        classes = info.get("classes") or [id2label[i] for i in range(len(id2label))]
        names = info.get("label_names") or list(classes)
        acc = accuracy(model, tok, args.eval, classes, names, max_len=max_len)
        print(f"accuracy = {acc:.4f} on {args.eval}")
        return 0
    texts = lines_or_text(args.text, args.input)
    for text, (label, prob) in zip(texts, predict(model, tok, texts, max_len=max_len)):
        print(f"{label}\t{prob:.4f}\t{text}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "classify", help="label texts with a trained classifier (e.g. sentiment)",
        description="Predict a label for each TEXT (or --input line), or measure accuracy with --eval.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("text", nargs="*", help="texts to classify (or use --input)")
    p.add_argument("--model", required=True, help="model folder written by `attnlab train classify`")
    p.add_argument("--input", help="a file with one text per line ('-' reads stdin)")
    p.add_argument("--eval", metavar="TSV", help="labelled label<TAB>text file: print the accuracy")
    p.add_argument("--max-len", type=int, help="tokens per text (default: the training setting)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_run)
