"""The CPU decode twin: oneDNN-packed linears equal nn.Linear, the twin shares the model's parameters
and leaves the model untouched, packed weights are freed with their module, and the compiled static
step uses the twin (or, without oneDNN, column-major weights) and still gives the eager tokens."""

from __future__ import annotations

import gc

import pytest
import torch
from conftest import tiny_gpt
from torch import nn
from torch.testing import assert_close

from attnlab.generation import generate
from attnlab.generation import packed as P
from attnlab.generation import static as S
from attnlab.layers.attention import MultiHeadAttention

pytestmark = pytest.mark.skipif(not P.packing_available(torch.float32), reason="this PyTorch build has no oneDNN")
ROWS = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13, 14]]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 24), (3, 24), (2, 1, 24), (2, 5, 24)])
def test_packed_linear_equals_nn_linear(shape, bias):
    torch.manual_seed(0)
    linear = nn.Linear(24, 40, bias=bias)
    x = torch.randn(shape)
    assert_close(P.PackedLinear(linear, batch_rows=shape[0])(x), linear(x))


def test_packing_refuses_other_dtypes():
    assert not P.packing_available(torch.float64)
    with pytest.raises(ValueError, match="float32 CPU weight"):
        P.PackedLinear(nn.Linear(4, 4).double(), batch_rows=1)


def test_twin_shares_parameters_and_leaves_the_model_alone():
    model = tiny_gpt("rope")
    twin = P.decode_twin(model, batch_rows=2)
    ours = {id(p) for p in model.parameters()}
    assert {id(p) for p in twin.parameters()} <= ours  # nothing copied: only the linears' weights left
    assert not any(isinstance(m, nn.Linear) for m in twin.modules())
    assert any(isinstance(m, nn.Linear) for m in model.modules())  # the model keeps its own layers
    assert all(m.backend == "naive" for m in twin.modules() if isinstance(m, MultiHeadAttention))
    assert all(m.backend == "sdpa" for m in model.modules() if isinstance(m, MultiHeadAttention))
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]])
    with torch.no_grad():
        assert_close(twin(ids), model(ids))


def test_packed_weights_are_freed_with_their_module():
    gc.collect()
    before = len(P._PACKED)
    twin = P.decode_twin(tiny_gpt(), batch_rows=1)
    n_linear = sum(isinstance(m, P.PackedLinear) for m in twin.modules())
    assert n_linear > 0 and len(P._PACKED) == before + n_linear
    del twin
    gc.collect()
    assert len(P._PACKED) == before


@pytest.mark.slow
@pytest.mark.parametrize("packing", [True, False])
def test_static_step_runs_on_the_twin_or_column_major_weights(packing, monkeypatch):
    monkeypatch.setattr(S, "packing_available", lambda dtype: packing)
    model = tiny_gpt("learned")
    eager = generate(model, ROWS, max_new_tokens=8, return_logits=True, ignore_eos=True)
    fast = generate(model, ROWS, max_new_tokens=8, return_logits=True, ignore_eos=True, compile=True)
    assert torch.equal(fast.sequences, eager.sequences)
    assert_close(fast.logits, eager.logits)
    runs = S._STATES[model].runs
    assert (runs is not model) == packing
    assert any(isinstance(m, P.PackedLinear) for m in runs.modules()) == packing


@pytest.mark.slow
@pytest.mark.parametrize(("positional", "overrides"), [
    ("alibi", {}), ("t5", {}), ("learned", {"backend": "sliding_window:window=4"}), ("rope", {"n_kv_heads": 2}),
])
def test_twin_decodes_every_position_scheme_and_attention_variant(positional, overrides):
    """ALiBi and T5 biases, an efficient attention variant (kept as is in the twin) and grouped-query heads."""
    model = tiny_gpt(positional, **overrides)
    eager = generate(model, ROWS, max_new_tokens=8, return_logits=True, ignore_eos=True)
    fast = generate(model, ROWS, max_new_tokens=8, return_logits=True, ignore_eos=True, compile=True)
    assert torch.equal(fast.sequences, eager.sequences)
    assert_close(fast.logits, eager.logits)
    assert any(isinstance(m, P.PackedLinear) for m in S._STATES[model].runs.modules())
