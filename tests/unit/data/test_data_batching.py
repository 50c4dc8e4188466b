"""Bucketing sampler and collators: coverage, determinism, token budgets, padding masks, teacher forcing."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import DataLoader

from attnlab.data import (
    IGNORE_INDEX,
    BucketBatchSampler,
    ClassificationCollator,
    LMBlocks,
    LMCollator,
    Seq2SeqCollator,
)

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(1, 40) for _ in range(500)]


def _padding_fraction(lengths: list[int], batches: list[list[int]]) -> float:
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - sum(lengths) / padded


@pytest.mark.parametrize("kw", [{"batch_size": 16}, {"max_tokens": 200}])
def test_every_index_once_and_deterministic(kw: dict[str, int]) -> None:
    s = BucketBatchSampler(LENGTHS, seed=3, **kw)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert len(s) == len(batches)
    assert list(BucketBatchSampler(LENGTHS, seed=3, **kw)) == batches
    s.set_epoch(1)
    assert list(s) != batches  # a new epoch reshuffles
    assert sorted(i for b in s for i in b) == list(range(len(LENGTHS)))


def test_bucketing_pads_far_less_than_random_batches() -> None:
    bucketed = BucketBatchSampler(LENGTHS, batch_size=16, pool_size=320).batches()
    perm = torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [perm[i : i + 16] for i in range(0, len(perm), 16)]
    assert _padding_fraction(LENGTHS, bucketed) < 0.2 < _padding_fraction(LENGTHS, random_batches)


def test_max_tokens_budget_and_sorted_eval_order() -> None:
    s = BucketBatchSampler(LENGTHS, max_tokens=120, shuffle=False)
    batches = s.batches()
    assert all(max(LENGTHS[i] for i in b) * len(b) <= 120 for b in batches)
    flat = [LENGTHS[i] for b in batches for i in b]
    assert flat == sorted(LENGTHS)
    with pytest.raises(ValueError, match="more than max_tokens"):
        BucketBatchSampler([5, 50], max_tokens=10)


def test_drop_last_and_argument_errors() -> None:
    s = BucketBatchSampler(list(range(1, 11)), batch_size=4, drop_last=True, shuffle=False)
    assert [len(b) for b in s] == [4, 4]
    with pytest.raises(ValueError, match="exactly one"):
        BucketBatchSampler(LENGTHS)
    with pytest.raises(ValueError, match="exactly one"):
        BucketBatchSampler(LENGTHS, batch_size=2, max_tokens=10)
    with pytest.raises(ValueError, match=">= 1"):
        BucketBatchSampler(LENGTHS, batch_size=0)


def test_seq2seq_collator_teacher_forcing() -> None:
    items = [{"index": 7, "src": [5, 6, 7], "tgt": [8, 9]}, {"index": 2, "src": [5], "tgt": [10, 11, 12]}]
    out = Seq2SeqCollator(pad_id=0, bos_id=1, eos_id=2)(items)
    assert out["src_ids"].tolist() == [[5, 6, 7, 2], [5, 2, 0, 0]]
    assert out["src_valid"].tolist() == [[True] * 4, [True, True, False, False]]
    assert out["tgt_in"].tolist() == [[1, 8, 9, 0], [1, 10, 11, 12]]
    assert out["labels"].tolist() == [[8, 9, 2, IGNORE_INDEX], [10, 11, 12, 2]]
    assert out["tgt_valid"].tolist() == (out["labels"] != IGNORE_INDEX).tolist()
    # the decoder input is the labels shifted right by one, starting with bos
    assert (out["tgt_in"][:, 1:][out["tgt_valid"][:, 1:]] == out["labels"][:, :-1][out["tgt_valid"][:, 1:]]).all()
    assert out["index"].tolist() == [7, 2]


def test_classification_collator_masks_and_labels() -> None:
    items = [{"index": 0, "ids": [2, 9, 3], "label": 1}, {"index": 1, "ids": [2, 3], "label": 0}]
    out = ClassificationCollator(pad_id=0)(items)
    assert out["ids"].tolist() == [[2, 9, 3], [2, 3, 0]]
    assert out["attention_mask"].dtype == torch.bool and out["attention_mask"].tolist()[1] == [True, True, False]
    assert out["labels"].tolist() == [1, 0]
    left = ClassificationCollator(pad_id=0, padding_side="left")(items)
    assert left["ids"].tolist()[1] == [0, 2, 3]


def test_lm_collator_through_a_dataloader() -> None:
    ds = LMBlocks(torch.arange(100), 8)
    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=LMCollator())
    batch = next(iter(loader))
    assert batch["ids"].shape == batch["labels"].shape == (4, 8)
    assert torch.equal(batch["labels"], batch["ids"] + 1)
    ragged = LMCollator(pad_id=0)([{"ids": [4, 5, 6], "labels": [5, 6, 7]}, {"ids": [4], "labels": [5]}])
    assert ragged["labels"].tolist() == [[5, 6, 7], [5, IGNORE_INDEX, IGNORE_INDEX]]
    assert ragged["attention_mask"].tolist() == [[True] * 3, [True, False, False]]


def test_sampler_drives_a_dataloader() -> None:
    items = [{"index": i, "ids": [2] * n, "label": i % 2} for i, n in enumerate(LENGTHS[:64])]
    sampler = BucketBatchSampler([len(x["ids"]) for x in items], batch_size=8, seed=0)
    loader = DataLoader(items, batch_sampler=sampler, collate_fn=ClassificationCollator(pad_id=0))
    seen = []
    for batch in loader:
        assert batch["attention_mask"].sum(1).tolist() == [LENGTHS[i] for i in batch["index"].tolist()]
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(64))
