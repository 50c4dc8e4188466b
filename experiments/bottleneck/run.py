"""The fixed-length bottleneck: does translation quality fall with sentence length without attention?

Dimension key: B batch, S source length, T target length, V vocabulary.

Trains four translators of similar size on Multi30k (en->de by default) with the same data, tokenizer,
schedule and number of updates:

    no attention   bi-GRU encoder, GRU decoder fed only the final context vector (Cho et al. 2014)
    Bahdanau       the same encoder, additive attention from the previous decoder state
    Luong-general  the same encoder, bilinear attention from the current state, input feeding
    Transformer    attnlab's Vaswani encoder-decoder, widths chosen to match the parameter count

then greedy-decodes test_2016_flickr and scores corpus BLEU (sacrebleu, detokenized) per bucket of
source-sentence length in words. Writes ``bleu_by_length.png``, ``alignments.png`` and
``results.json`` next to this file.

    python experiments/bottleneck/run.py            # reduced CPU setting (a few minutes)
    python experiments/bottleneck/run.py --full     # the GPU setting
    attnlab experiment bottleneck [--full]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import sacrebleu
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from attnlab.classic import RNNSeq2Seq, RNNSeq2SeqConfig, greedy_decode
from attnlab.data import (
    IGNORE_INDEX,
    BucketBatchSampler,
    ParallelDataset,
    Seq2SeqCollator,
    Tokenizer,
    read_parallel,
)
from attnlab.generation import generate
from attnlab.models import Transformer, TransformerConfig
from attnlab.viz.heatmap import plot_alignment

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUCKETS = [(1, 8), (9, 12), (13, 16), (17, 20), (21, 99)]  # source length in words, inclusive


@dataclasses.dataclass(frozen=True)
class Setting:
    train_pairs: int | None  # None: all 29,000
    vocab_size: int  # joint byte-level BPE
    d_embed: int
    d_hidden: int  # RNN memory / decoder width
    tf_d_model: int
    tf_layers: int
    tf_d_ff: int
    steps: int
    batch_size: int
    lr: float
    dropout: float
    max_len: int = 64  # tokens per side (longer sentences are truncated)


SETTINGS = {
    "reduced": Setting(
        train_pairs=None, vocab_size=2000, d_embed=64, d_hidden=128, tf_d_model=112, tf_layers=2, tf_d_ff=224,
        steps=1400, batch_size=32, lr=3e-3, dropout=0.1,
    ),
    "full": Setting(
        train_pairs=None, vocab_size=8000, d_embed=256, d_hidden=512, tf_d_model=320, tf_layers=3, tf_d_ff=1280,
        steps=12000, batch_size=128, lr=1e-3, dropout=0.3,
    ),
}


def data_dir() -> Path:
    for base in (os.environ.get("ATTNLAB_DATA"), REPO.parent / "shared" / "data"):
        if base and (Path(base) / "multi30k" / "train.en.gz").is_file():
            return Path(base) / "multi30k"
    raise FileNotFoundError(
        "Multi30k not found: set ATTNLAB_DATA to a folder holding multi30k/{train,test_2016_flickr}.{en,de,fr}.gz "
        "or place shared/data beside the repository"
    )


# ----- models ---------------------------------------------------------------------------------------


def rnn_config(s: Setting, vocab: int, tok: Tokenizer, **kw) -> RNNSeq2SeqConfig:
    return RNNSeq2SeqConfig(
        vocab_size=vocab, d_embed=s.d_embed, d_hidden=s.d_hidden, cell="gru", bidirectional=True,
        dropout=s.dropout, max_len=s.max_len + 16, pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id, **kw,
    )


def build_models(s: Setting, tok: Tokenizer) -> dict[str, nn.Module]:
    V = tok.vocab_size
    tf = TransformerConfig(
        vocab_size=V, d_model=s.tf_d_model, n_heads=4, n_encoder_layers=s.tf_layers, n_decoder_layers=s.tf_layers,
        d_ff=s.tf_d_ff, dropout=s.dropout, max_len=2 * s.max_len + 16, tie_embeddings=True, norm_first=True,
        pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id,
    )
    return {
        "no attention": RNNSeq2Seq(rnn_config(s, V, tok, attention="none")),
        "Bahdanau": RNNSeq2Seq(rnn_config(s, V, tok, attention="bahdanau")),
        "Luong-general": RNNSeq2Seq(rnn_config(s, V, tok, attention="luong", score="general", input_feeding=True)),
        "Transformer": Transformer(tf),
    }


# ----- training -------------------------------------------------------------------------------------


def batches(dataset: ParallelDataset, tok: Tokenizer, batch_size: int, seed: int):
    """An endless stream of length-bucketed teacher-forcing batches."""
    sampler = BucketBatchSampler(dataset.lengths, batch_size=batch_size, shuffle=True, seed=seed)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=Seq2SeqCollator(tok.pad_id, tok.bos_id, tok.eos_id))
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def train(model: nn.Module, stream, s: Setting, device: torch.device, desc: str) -> dict[str, float]:
    """AdamW, 5% linear warmup then cosine decay to 10%, label smoothing 0.1, gradient clipping at 1."""
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
    warm = max(1, s.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * (0.55 + 0.45 * math.cos(math.pi * min(i, s.steps) / s.steps))
    )
    model.to(device).train()
    losses, t0, cpu0 = [], time.perf_counter(), time.process_time()
    for _ in tqdm(range(s.steps), desc=desc, file=sys.stderr, mininterval=2.0):
        b = {k: v.to(device) for k, v in next(stream).items()}
        logits = model(b["src_ids"], b["tgt_in"], b["src_valid"])  # (B, T, V)
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(), b["labels"].flatten(), ignore_index=IGNORE_INDEX, label_smoothing=0.1
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    tail = losses[-50:]
    return {"final_loss": sum(tail) / len(tail), "train_seconds": time.perf_counter() - t0,
            "train_cpu_seconds": time.process_time() - cpu0}


# ----- evaluation -----------------------------------------------------------------------------------


@torch.no_grad()
def translate(
    model: nn.Module, tok: Tokenizer, sources: list[str], device: torch.device, batch_size: int = 100
) -> tuple[list[str], list[Tensor | None]]:
    """Greedy translations, and for RNN models each sentence's (T, S) alignment."""
    model.eval()
    hyps: list[str] = []
    aligns: list[Tensor | None] = []
    for i in range(0, len(sources), batch_size):
        enc = tok.encode_batch(sources[i : i + batch_size], add_special_tokens=False)
        ids = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(row[:63] + [tok.eos_id]) for row in _rows(enc.ids, enc.valid)],
            batch_first=True, padding_value=tok.pad_id,
        ).to(device)  # (B, S)
        valid = ids != tok.pad_id
        limit = min(80, int(valid.sum(1).max()) * 2 + 10)
        if isinstance(model, RNNSeq2Seq):
            out = greedy_decode(model, ids, valid, max_new_tokens=limit)
            new, lengths = out.tokens, out.lengths
            for b in range(ids.shape[0]):
                a = out.alignments
                aligns.append(None if a is None else a[b, : int(lengths[b]), : int(valid[b].sum())].cpu())
        else:
            res = generate(model, ids, attention_mask=valid, max_new_tokens=limit)
            new, lengths = res.new_tokens, res.lengths
            aligns.extend([None] * ids.shape[0])
        hyps.extend(tok.decode(new[b, : int(lengths[b])].tolist()) for b in range(ids.shape[0]))
    return hyps, aligns


def _rows(ids: Tensor, valid: Tensor) -> list[list[int]]:
    return [r[m].tolist() for r, m in zip(ids, valid)]


def bleu_by_bucket(hyps: list[str], refs: list[str], sources: list[str]) -> dict[str, dict[str, float]]:
    """Corpus BLEU of every source-length bucket, plus the whole test set under "all"."""
    out = {"all": {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score, "n": len(refs)}}
    for lo, hi in BUCKETS:
        idx = [i for i, s in enumerate(sources) if lo <= len(s.split()) <= hi]
        name = f"{lo}-{hi}" if hi < 99 else f"{lo}+"
        bleu = sacrebleu.corpus_bleu([hyps[i] for i in idx], [[refs[i] for i in idx]]).score
        out[name] = {"bleu": bleu, "n": len(idx)}
    return out


# ----- figures --------------------------------------------------------------------------------------


def plot_bleu(results: dict, path: Path, title: str) -> None:
    names = [f"{lo}-{hi}" if hi < 99 else f"{lo}+" for lo, hi in BUCKETS]
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for model_name, r in results.items():
        ax.plot(range(len(names)), [r["bleu"][n]["bleu"] for n in names], marker="o",
                label=f"{model_name} ({r['params'] / 1e6:.2f}M, all {r['bleu']['all']['bleu']:.1f})")
    counts = next(iter(results.values()))["bleu"]
    ax.set_xticks(range(len(names)), [f"{n}\n(n={counts[n]['n']})" for n in names])
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel("BLEU (sacrebleu, greedy)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_alignments(samples: list[tuple[str, str, Tensor, list[str], list[str]]], path: Path) -> None:
    """samples: (model name, sentence label, alignment (T, S), source tokens, target tokens)."""
    cols = 2
    rows = math.ceil(len(samples) / cols)
    fig = Figure(figsize=(6.5 * cols, 5.5 * rows))
    for i, (model_name, label, a, src, tgt) in enumerate(samples):
        ax = fig.add_subplot(rows, cols, i + 1)
        plot_alignment(a, src, tgt, ax=ax, title=f"{model_name}: {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _label(tok: Tokenizer, token_id: int) -> str:
    """A readable tick label for one byte-level BPE token (its decoded text)."""
    return tok.decode([token_id], skip_special_tokens=False).strip() or "_"


def alignment_samples(tok: Tokenizer, sources: list[str], picks: list[int], translations: dict) -> list:
    out = []
    for name, (hyps, aligns) in translations.items():
        for i in picks:
            if aligns[i] is None:
                continue
            src = [_label(tok, t) for t in tok.encode(sources[i])[:63]] + ["</s>"]
            tgt = [_label(tok, t) for t in tok.encode(hyps[i])] + ["</s>"]
            a = aligns[i][: len(tgt), : len(src)]
            out.append((name, f"test #{i} ({len(sources[i].split())} words)", a, src, tgt[: a.shape[0]]))
    return out


# ----- driver ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bottleneck", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--full", action="store_true", help="the GPU setting (all data, larger models, 12k steps)")
    p.add_argument("--target", choices=["de", "fr"], default="de", help="target language (source is English)")
    p.add_argument("--steps", type=int, default=None, help="override the number of updates per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=HERE, help="where the figures and results.json go")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = SETTINGS["full" if args.full else "reduced"]
    if args.steps is not None:
        s = dataclasses.replace(s, steps=args.steps)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    root, t0, cpu0 = data_dir(), time.perf_counter(), time.process_time()
    train_src, train_tgt = read_parallel(root / "train.en.gz", root / f"train.{args.target}.gz")
    test_src, test_tgt = read_parallel(root / "test_2016_flickr.en.gz", root / f"test_2016_flickr.{args.target}.gz")
    if s.train_pairs:
        train_src, train_tgt = train_src[: s.train_pairs], train_tgt[: s.train_pairs]
    tok = Tokenizer.train("bpe", texts=train_src + train_tgt, vocab_size=s.vocab_size)
    dataset = ParallelDataset(train_src, train_tgt, tok, max_len=s.max_len)
    results, translations = {}, {}
    torch.manual_seed(args.seed)
    for i, (name, model) in enumerate(build_models(s, tok).items()):
        torch.manual_seed(args.seed + i)
        stats = train(model, batches(dataset, tok, s.batch_size, args.seed), s, device, desc=name)
        hyps, aligns = translate(model, tok, test_src, device)
        translations[name] = (hyps, aligns)
        results[name] = {"params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                         "bleu": bleu_by_bucket(hyps, test_tgt, test_src), **stats}
        by_len = "  ".join(f"{k}:{v['bleu']:.1f}" for k, v in results[name]["bleu"].items() if k != "all")
        print(f"{name:14s} {results[name]['params'] / 1e6:.2f}M params  "
              f"BLEU {results[name]['bleu']['all']['bleu']:.2f}  {by_len}", flush=True)
    setting = "full" if args.full else "reduced"
    title = f"Multi30k en-{args.target}, test_2016_flickr, {setting} setting ({s.steps} updates of {s.batch_size})"
    args.out.mkdir(parents=True, exist_ok=True)
    plot_bleu(results, args.out / "bleu_by_length.png", title)
    picks = _sample_sentences(test_src)
    plot_alignments(alignment_samples(tok, test_src, picks, translations), args.out / "alignments.png")
    summary = {"setting": setting, "target": args.target, "config": dataclasses.asdict(s), "device": str(device),
               "threads": torch.get_num_threads(), "seconds": time.perf_counter() - t0,
               "cpu_seconds": time.process_time() - cpu0, "models": results,
               "samples": {str(i): {"source": test_src[i], "reference": test_tgt[i],
                                    **{n: translations[n][0][i] for n in translations}} for i in picks}}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out / 'bleu_by_length.png'}, alignments.png, results.json in {summary['seconds']:.0f} s")
    return 0


def _sample_sentences(sources: list[str]) -> list[int]:
    """One typical (about 10 words) and the longest test sentence."""
    lengths = [len(s.split()) for s in sources]
    typical = min(range(len(sources)), key=lambda i: (abs(lengths[i] - 10), i))
    return [typical, max(range(len(sources)), key=lambda i: lengths[i])]


if __name__ == "__main__":
    sys.exit(main())
