"""``attnlab train lm|translate|classify``: train a model on your data and save a model folder.

Dimension key: none (command-line glue; the work happens in :mod:`attnlab.tasks`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any

EPILOG = """examples:
  # character-level GPT on the bundled tiny Shakespeare (nanoGPT's small CPU setting, ~2000 steps)
  attnlab train lm --data tinyshakespeare --preset char-cpu --out runs/shakespeare
  attnlab train lm --data my_corpus.txt --tokenizer bpe --preset char-cpu --set n_layers=6 --out runs/mine

  # English -> German Transformer on two aligned files (plain or .gz) or one SRC<TAB>TGT file
  attnlab train translate --data train.en.gz train.de.gz --valid val.en.gz val.de.gz --out runs/en-de
  attnlab train translate --data pairs.tsv --preset tiny --steps 50 --out /tmp/tr

  # fine-tune the pretrained all-MiniLM-L6-v2 for sentiment on a label<TAB>text file
  attnlab train classify --data train.tsv --valid dev.tsv --labels negative,positive --out runs/sst2
  attnlab train classify --data train.tsv --preset bert-tiny --out runs/scratch   # a small BERT from scratch

Training resumes from OUT/checkpoints when run again with the same settings. The model folder (OUT) is
what `attnlab generate|translate|classify --model OUT` loads; classifier folders also load in HF
transformers: pipeline("sentiment-analysis", model=OUT).
"""


def _recipe_types(kind: str) -> tuple[type, dict[str, Any]]:
    from attnlab.tasks.classification import (
        CLASSIFICATION_RECIPES,
        ClassificationRecipe,
    )
    from attnlab.tasks.lm import LM_RECIPES, LMRecipe
    from attnlab.tasks.translation import TRANSLATION_RECIPES, TranslationRecipe

    return {
        "lm": (LMRecipe, LM_RECIPES),
        "translate": (TranslationRecipe, TRANSLATION_RECIPES),
        "classify": (ClassificationRecipe, CLASSIFICATION_RECIPES),
    }[kind]


def _convert(text: str, annotation: Any, name: str) -> Any:
    """``text`` as the recipe field's type (int, float, bool, str, or X | None)."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if text.lower() in ("none", "null") and type(None) in options:
        return None
    for kind in (t for t in options if t is not type(None)):
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return text.lower() in ("true", "1", "yes")
            return kind(text)
        except (TypeError, ValueError):
            continue
    raise ValueError(f"--set {name}={text}: expected {annotation}")


def parse_sets(items: list[str], recipe_type: type) -> dict[str, Any]:
    """``["n_layers=6", "dropout=0.2"]`` -> typed recipe overrides; unknown names are a clear error."""
    hints = typing.get_type_hints(recipe_type)
    fields = {f.name for f in dataclasses.fields(recipe_type)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        if name not in fields:
            raise ValueError(f"--set {name}: not a {recipe_type.__name__} field; fields: {sorted(fields)}")
        out[name] = _convert(value, hints[name], name)
    return out


def _common_overrides(args: argparse.Namespace, recipe_type: type) -> dict[str, Any]:
    overrides = parse_sets(args.set or [], recipe_type)
    for flag, field in (("steps", "max_steps"), ("lr", "lr"), ("batch_size", "batch_size"), ("seed", "seed")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    return overrides


def _run(args: argparse.Namespace) -> int:
    from attnlab.tasks.common import data_path

    recipe_type, recipes = _recipe_types(args.task)
    if args.preset not in recipes:
        raise ValueError(f"unknown preset {args.preset!r} for '{args.task}'; choose one of {sorted(recipes)}")
    overrides = _common_overrides(args, recipe_type)
    budget = args.time_budget * 60 if args.time_budget else None
    common = dict(recipe=args.preset, device=args.device, progress=not args.no_progress, time_budget=budget,
                  tensorboard=args.tensorboard)
    if args.task == "lm":
        from attnlab.tasks.lm import train_lm

        for flag in ("block_size", "tokenizer", "vocab_size"):
            if getattr(args, flag) is not None:
                overrides[flag] = getattr(args, flag)
        info = train_lm(data_path(args.data), args.out, **common, **overrides)
        summary = f"validation loss {info['val_loss']:.4f} (perplexity {info['val_ppl']:.2f})"
    elif args.task == "translate":
        from attnlab.tasks.translation import train_translation

        info = train_translation(args.data, args.out, valid=args.valid, bleu_limit=args.bleu_limit, **common,
                                 **overrides)
        summary = "no --valid data: no BLEU"
        if "val_bleu" in info:
            summary = (f"validation BLEU {info['val_bleu']:.2f} (beam {info['val_bleu_beams']}), "
                       f"loss {info['val_loss']:.4f}")
    else:
        from attnlab.tasks.classification import train_classifier

        for flag in ("init", "max_len"):
            if getattr(args, flag) is not None:
                overrides[flag] = getattr(args, flag)
        if args.subset is not None:
            overrides["train_subset"] = args.subset
        names = args.labels.split(",") if args.labels else None
        info = train_classifier(args.data, args.out, valid=args.valid, label_names=names, **common, **overrides)
        summary = f"validation accuracy {info['val_accuracy']:.4f}" if "val_accuracy" in info else "no --valid data"
    state = "finished" if info["finished"] else "stopped by --time-budget (run again to continue)"
    print(f"{args.task}: step {info['step']}, {state}; {summary}")
    print(f"model folder: {args.out}")
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    return 0


def _add_common(p: argparse.ArgumentParser, default_preset: str) -> None:
    p.add_argument("--out", required=True, help="output folder: model, tokenizer, checkpoints, metrics.csv")
    p.add_argument("--preset", default=default_preset, help=f"training recipe (default: {default_preset})")
    p.add_argument("--steps", type=int, help="optimizer steps (overrides the preset)")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--batch-size", type=int, help="examples per batch (translation batches by --set max_tokens=N)")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", nargs="+", metavar="NAME=VALUE", help="override any recipe field, e.g. n_layers=6")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    p.add_argument("--time-budget", type=float, metavar="MIN", help="stop (and checkpoint) after this many minutes")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs under OUT/tensorboard")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=_run)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a language model, a translator or a classifier on your data",
        description="Train a model for one of the three tasks and save it as a model folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    lm = tasks.add_parser("lm", help="GPT language model on a text file", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    lm.add_argument("--data", required=True, help="a UTF-8 text file (or 'tinyshakespeare', bundled)")
    lm.add_argument("--block-size", type=int, help="context length in tokens")
    lm.add_argument("--tokenizer", choices=["char", "bpe", "wordpiece"], help="tokenizer kind (default: char)")
    lm.add_argument("--vocab-size", type=int, help="vocabulary size for bpe/wordpiece")
    _add_common(lm, "char-cpu")
    tr = tasks.add_parser("translate", help="Transformer translator on a parallel corpus", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--data", nargs="+", required=True, metavar="FILE", help="SRC TGT aligned files, or one TSV")
    tr.add_argument("--valid", nargs="+", metavar="FILE", help="validation SRC TGT (or TSV): loss and BLEU")
    tr.add_argument("--bleu-limit", type=int, help="score BLEU on the first N validation sentences only")
    _add_common(tr, "multi30k-cpu")
    cl = tasks.add_parser("classify", help="text classifier on a label<TAB>text file", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    cl.add_argument("--data", required=True, help="training TSV: label<TAB>text (a 'label' header is fine)")
    cl.add_argument("--valid", help="validation TSV with the same labels: accuracy")
    cl.add_argument("--labels", help="comma-separated names for the sorted labels, e.g. negative,positive")
    cl.add_argument("--init", help="pretrained BERT/DistilBERT folder or 'all-MiniLM-L6-v2' (default of 'minilm')")
    cl.add_argument("--max-len", type=int, help="tokens per text (longer ones are truncated)")
    cl.add_argument("--subset", type=int, help="train on the first N examples only")
    _add_common(cl, "minilm")
