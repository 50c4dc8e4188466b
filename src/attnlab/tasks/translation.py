"""Translation end to end: joint BPE vocabulary, Vaswani Transformer, Trainer, beam/greedy decoding, sacreBLEU.

Dimension key: B batch, S source length, T target length, V (joint) vocabulary.

    info = train_translation(("train.en.gz", "train.de.gz"), "runs/en-de", valid=("val.en.gz", "val.de.gz"))
    model, tok, _ = load_model("runs/en-de")
    hyps = translate(model, tok, ["A dog runs on the beach."], num_beams=4)
    print(bleu(hyps, ["Ein Hund rennt am Strand."]))

One byte-level BPE vocabulary is learned on both sides of the training corpus, so the source embedding,
target embedding and output projection are one tied matrix (Vaswani et al. 2017, section 3.4). Outputs are
decoded to plain text (byte-level BPE decodes exactly) and scored with sacreBLEU's default 13a tokenization.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.data import (
    BucketBatchSampler,
    ParallelDataset,
    Seq2SeqCollator,
    Tokenizer,
    read_parallel,
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


@dataclasses.dataclass
class TranslationRecipe(Recipe):
    """Transformer shape + training hyper-parameters."""

    d_model: int = 256
    n_heads: int = 4
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    d_ff: int = 1024
    dropout: float = 0.1
    norm_first: bool = True  # pre-norm trains stably without a long warmup
    vocab_size: int = 8000  # joint byte-level BPE
    max_len: int = 128  # tokens per side (longer sentences are truncated)
    max_tokens: int = 4096  # padded tokens per batch (bucketed)
    max_steps: int = 2000
    lr: float = 1e-3
    warmup_steps: int = 400
    schedule: str = "inverse_sqrt"
    label_smoothing: float = 0.1
    weight_decay: float = 0.0
    beta2: float = 0.98
    grad_clip: float = 1.0
    eval_every: int = 500
    num_beams: int = 4
    seed: int = 0


TRANSLATION_RECIPES: dict[str, TranslationRecipe] = {
    # sized for ~15 minutes on a 2-core CPU (about 2.5 epochs of Multi30k); the GPU recipe is the real model
    "multi30k-cpu": TranslationRecipe(
        d_model=128, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=512, vocab_size=4000, max_steps=700,
        lr=1.5e-3, warmup_steps=150, schedule="cosine", eval_every=0,
    ),
    "multi30k-gpu": TranslationRecipe(
        d_model=512, n_heads=8, n_encoder_layers=6, n_decoder_layers=6, d_ff=2048, dropout=0.3, vocab_size=10000,
        max_tokens=12000, max_steps=15000, lr=7e-4, warmup_steps=4000, eval_every=1000, num_beams=5,
        weight_decay=0.0001,
    ),
    "tiny": TranslationRecipe(
        d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=1, d_ff=64, dropout=0.0, vocab_size=300,
        max_len=32, max_tokens=256, max_steps=20, lr=3e-3, warmup_steps=2, eval_every=0, num_beams=2,
    ),
}


def translation_recipe(name: str, **overrides: Any) -> TranslationRecipe:
    if name not in TRANSLATION_RECIPES:
        raise ValueError(f"unknown translation preset {name!r}; choose one of {sorted(TRANSLATION_RECIPES)}")
    return TRANSLATION_RECIPES[name].replace(**{k: v for k, v in overrides.items() if v is not None})


def joint_tokenizer(out_dir: Path, sources: Sequence[str], targets: Sequence[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE learned on both languages (the saved one when resuming a run in ``out_dir``)."""
    if resuming(out_dir) and (out_dir / "tokenizer.json").is_file():
        return Tokenizer.load(out_dir)
    tok = Tokenizer.train("bpe", texts=[*sources, *targets], vocab_size=vocab_size)
    tok.save(out_dir)
    return tok


def build_transformer(recipe: TranslationRecipe, tok: Tokenizer) -> nn.Module:
    from attnlab.models.transformer import Transformer, TransformerConfig

    if tok.bos_id is None or tok.eos_id is None:
        raise ValueError("translation needs a tokenizer with bos and eos tokens (train a 'bpe' or 'char' one)")
    config = TransformerConfig(
        vocab_size=tok.vocab_size, d_model=recipe.d_model, n_heads=recipe.n_heads,
        n_encoder_layers=recipe.n_encoder_layers, n_decoder_layers=recipe.n_decoder_layers, d_ff=recipe.d_ff,
        dropout=recipe.dropout, norm_first=recipe.norm_first, max_len=recipe.max_len, pad_id=tok.pad_id,
        bos_id=tok.bos_id, eos_id=tok.eos_id,
    )
    return Transformer(config)


def _pair(files: Sequence[PathLike]) -> tuple[PathLike, PathLike | None]:
    if len(files) not in (1, 2):
        raise ValueError(f"give a parallel corpus as SRC TGT (two aligned files) or one TSV, got {len(files)} paths")
    return files[0], (files[1] if len(files) == 2 else None)


def train_translation(
    data: Sequence[PathLike], out_dir: PathLike, *, valid: Sequence[PathLike] | None = None,
    recipe: str | TranslationRecipe = "multi30k-cpu", device: str = "auto", progress: bool = True,
    time_budget: float | None = None, tensorboard: bool = False, bleu_limit: int | None = None, **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) a Transformer on a parallel corpus; save the model folder; return metrics (BLEU on valid)."""
    r = recipe if isinstance(recipe, TranslationRecipe) else translation_recipe(recipe)
    r = r.replace(**{k: v for k, v in overrides.items() if v is not None})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(r.seed)
    sources, targets = read_parallel(*_pair(data))
    tok = joint_tokenizer(out, sources, targets, r.vocab_size)
    train_ds = ParallelDataset(sources, targets, tok, max_len=r.max_len)
    val = read_parallel(*_pair(valid)) if valid else None
    model = build_transformer(r, tok)
    start = time.perf_counter()
    trainer = _trainer(r, model, tok, train_ds, val, out, device=device, progress=progress, tensorboard=tensorboard)
    finished, final = fit_within(trainer, TimeBudget(time_budget))
    info: dict[str, Any] = {"task": "translation", "recipe": dataclasses.asdict(r), "step": trainer.step,
                            "finished": finished, "train_seconds": time.perf_counter() - start}
    if val is not None:
        ev = final or trainer.evaluate()
        info["val_loss"], info["val_ppl"] = ev.get("nll", ev["loss"]), ev.get("ppl")  # without label smoothing
        srcs, refs = val[0][:bleu_limit], val[1][:bleu_limit]
        info["val_bleu"] = bleu(translate(model, tok, srcs, num_beams=r.num_beams), refs)
        info["val_bleu_beams"] = r.num_beams
    save_model(model, out, tokenizer=tok, info=info)
    return info


def _trainer(
    r: TranslationRecipe, model: nn.Module, tok: Tokenizer, train_ds: ParallelDataset,
    val: tuple[list[str], list[str]] | None, out: Path, *, device: str, progress: bool, tensorboard: bool,
) -> Any:
    from attnlab.training import ResumableLoader, Seq2SeqTask, TrainConfig, Trainer

    collate = Seq2SeqCollator(tok.pad_id, tok.bos_id, tok.eos_id)  # type: ignore[arg-type]
    sampler = BucketBatchSampler(train_ds.lengths, max_tokens=r.max_tokens, seed=r.seed)
    loader = ResumableLoader(train_ds, batch_sampler=sampler, collate_fn=collate, seed=r.seed)
    eval_data = None
    if val is not None:
        val_ds = ParallelDataset(val[0], val[1], tok, max_len=r.max_len)
        eval_sampler = BucketBatchSampler(val_ds.lengths, max_tokens=r.max_tokens, shuffle=False)
        eval_data = [collate([val_ds[i] for i in b]) for b in eval_sampler]
    config = TrainConfig(
        out_dir=str(out), max_steps=r.max_steps, lr=r.lr, warmup_steps=min(r.warmup_steps, r.max_steps // 2),
        schedule=r.schedule,
        weight_decay=r.weight_decay, betas=(0.9, r.beta2), grad_clip=r.grad_clip, eval_every=r.eval_every,
        seed=r.seed, device=str(resolve_device(device)), progress=progress, tensorboard=tensorboard,
        log_every=max(1, min(10, r.max_steps // 10)), save_every=max(r.max_steps // 4, 1),
    )
    task = Seq2SeqTask(label_smoothing=r.label_smoothing)
    return Trainer(model, task, loader, config, eval_data=eval_data)


def translate(
    model: nn.Module, tok: Tokenizer, sources: Sequence[str], *, num_beams: int = 4, batch_size: int = 64,
    max_new_tokens: int | None = None, length_penalty: float = 1.0, progress: bool = False,
) -> list[str]:
    """Detokenized translations of ``sources`` (greedy when ``num_beams == 1``), in input order."""
    from tqdm.auto import tqdm

    from attnlab.generation import generate

    ctx = int(model.config.max_len)  # type: ignore[union-attr]
    rows = [ids[: ctx - 1] + [tok.eos_id] for ids in tok.encode_many(sources)]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths batch together
    out: list[str] = [""] * len(rows)
    bar = tqdm(total=len(rows), disable=not progress, unit="sent", dynamic_ncols=True)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        longest = max(len(rows[i]) for i in idx)
        n = max_new_tokens or min(ctx - 1, int(1.5 * longest) + 10)
        result = generate(model, [rows[i] for i in idx], tokenizer=tok, max_new_tokens=n, num_beams=num_beams,
                          length_penalty=length_penalty, early_stopping=num_beams > 1)
        for i, text in zip(idx, result.texts or []):
            out[i] = text.strip()
        bar.update(len(idx))
    bar.close()
    return out


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus sacreBLEU (13a tokenization, case-sensitive) of detokenized hypotheses against one reference each."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)
