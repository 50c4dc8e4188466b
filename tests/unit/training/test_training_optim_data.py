"""Weight-decay groups and the resumable data loader.

Dimension key: B batch, T length.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.training import ResumableLoader, build_adamw, param_groups
from attnlab.training.optim import split_decay_names


def test_decay_groups_gpt(tiny_gpt) -> None:
    model = tiny_gpt()
    decay, no_decay = split_decay_names(model)
    params = dict(model.named_parameters())
    assert len(decay) + len(no_decay) == len(params) and not set(decay) & set(no_decay)
    for name in decay:  # only matrices of compute layers are decayed
        assert params[name].ndim == 2 and "embed" not in name and "norm" not in name and "ln" not in name, name
    for name in no_decay:
        assert params[name].ndim < 2 or "embed" in name or "pos" in name, name
    # every Linear weight decays; the tied LM head is the token embedding, which does not
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    emb = next(m for m in model.modules() if isinstance(m, nn.Embedding)).weight
    assert {id(params[n]) for n in decay} == linear_weights - {id(emb)}
    assert any(params[n] is emb for n in no_decay)


def test_decay_groups_transformer_and_adamw() -> None:
    from attnlab.models.config import from_name
    from attnlab.models.transformer import Transformer

    model = Transformer(from_name("tiny"))
    groups = param_groups(model, 0.01)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    n_distinct = len({id(p) for p in model.parameters()})
    assert sum(len(g["params"]) for g in groups) == n_distinct
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    exempt = {id(p) for p in groups[1]["params"]}
    assert all(id(m.weight) in exempt and id(m.bias) in exempt for m in norms)
    opt = build_adamw(model, lr=1e-3, weight_decay=0.01)
    assert opt.defaults["fused"] is None  # CPU parameters: the default (non-fused) kernel
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_adamw(frozen, lr=1e-3)


def _items(n: int) -> list[dict[str, torch.Tensor]]:
    return [{"x": torch.tensor([i])} for i in range(n)]


def _ids(batch: dict) -> list[int]:
    return batch["x"].reshape(-1).tolist()


def test_loader_epochs_are_reproducible_permutations() -> None:
    loader = ResumableLoader(_items(10), batch_size=3, seed=1)
    epoch0 = [_ids(b) for b in loader]
    epoch1 = [_ids(b) for b in loader]
    assert len(epoch0) == 3 and all(len(b) == 3 for b in epoch0)  # drop_last
    assert epoch0 != epoch1 and loader.state_dict() == {"epoch": 2, "index": 0, "seed": 1}
    again = ResumableLoader(_items(10), batch_size=3, seed=1)
    assert [_ids(b) for b in again] == epoch0
    flat = [i for batch in epoch0 for i in batch]
    assert len(set(flat)) == 9 and set(flat) <= set(range(10))


def test_loader_resumes_mid_epoch() -> None:
    a = ResumableLoader(_items(20), batch_size=4, seed=2)
    it = iter(a)
    first = [_ids(next(it)) for _ in range(2)]
    state = a.state_dict()
    assert state == {"epoch": 0, "index": 2, "seed": 2}
    rest = [_ids(b) for b in it]
    b = ResumableLoader(_items(20), batch_size=4, seed=2)
    b.load_state_dict(state)
    assert [_ids(x) for x in b] == rest and len(first + rest) == 5
    with pytest.raises(ValueError, match="seed"):
        ResumableLoader(_items(20), batch_size=4, seed=3).load_state_dict(state)


def test_loader_shards_global_batches() -> None:
    full = [_ids(b) for b in ResumableLoader(_items(12), batch_size=4, seed=0)]
    shards = []
    for rank in range(2):
        loader = ResumableLoader(_items(12), batch_size=4, seed=0)
        loader.set_shard(rank, 2)
        shards.append([_ids(b) for b in loader])
    assert [s0 + s1 for s0, s1 in zip(*shards)] == full
    with pytest.raises(ValueError, match="multiple of 3"):
        ResumableLoader(_items(12), batch_size=4).set_shard(0, 3)


def test_loader_with_batch_sampler_and_collate() -> None:
    from attnlab.data import BucketBatchSampler

    lengths = [1 + i % 5 for i in range(30)]
    items = [{"ids": list(range(n))} for n in lengths]
    sampler = BucketBatchSampler(lengths, batch_size=4, seed=0)
    def collate(xs: list[dict]) -> dict[str, torch.Tensor]:
        return {"n": torch.tensor([len(x["ids"]) for x in xs])}

    loader = ResumableLoader(items, batch_sampler=sampler, collate_fn=collate)
    assert loader.batch_spec == {"batch_size": 4}
    sampler.set_epoch(0)
    expected = [[lengths[i] for i in b] for b in sampler]
    assert [b["n"].tolist() for b in loader] == expected
    with pytest.raises(ValueError, match="exactly one"):
        ResumableLoader(items)


def test_loader_workers_match_in_process() -> None:
    serial = [_ids(b) for b in ResumableLoader(_items(16), batch_size=4, seed=4)]
    workers = [_ids(b) for b in ResumableLoader(_items(16), batch_size=4, seed=4, num_workers=1)]
    assert serial == workers
