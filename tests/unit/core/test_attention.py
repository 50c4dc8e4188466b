"""The attention function: backends agree with a float64 reference; masks, errors, gradients."""

import pytest
import torch
from torch.testing import assert_close

from attnlab.core.attention import attention, available_backends
from attnlab.core.masks import causal_mask, combine_masks, padding_mask, query_padding_mask


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


CASES = {
    "self": lambda: (rand(2, 4, 6, 8), rand(2, 4, 6, 8), rand(2, 4, 6, 8), None, None),
    "cross": lambda: (rand(2, 4, 5, 8), rand(2, 4, 9, 8), rand(2, 4, 9, 8), None, None),
    "causal": lambda: (rand(2, 4, 7, 8), rand(2, 4, 7, 8), rand(2, 4, 7, 8), causal_mask(7), None),
    "padded": lambda: (
        rand(3, 2, 5, 16), rand(3, 2, 5, 16), rand(3, 2, 5, 16),
        padding_mask(torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]).bool()), None,
    ),
    "padded-cross-bias": lambda: (
        rand(2, 4, 3, 8), rand(2, 4, 6, 8), rand(2, 4, 6, 8),
        padding_mask(torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]]).bool()), rand(1, 4, 3, 6),
    ),
    "causal-padded-bias": lambda: (
        rand(2, 4, 6, 8), rand(2, 4, 6, 8), rand(2, 4, 6, 8),
        combine_masks(causal_mask(6), padding_mask(torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6]).bool())),
        rand(1, 4, 6, 6),
    ),
    "gqa": lambda: (rand(2, 8, 5, 8), rand(2, 2, 5, 8), rand(2, 2, 5, 8), causal_mask(5), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_backends_match_float64_reference(case, backend, attention_reference):
    torch.manual_seed(0)
    q, k, v, mask, bias = CASES[case]()
    want, want_w = attention_reference(q, k, v, mask, bias)
    out, w = attention(q, k, v, mask, bias, backend=backend)
    assert w is None
    assert_close(out, want.float())
    _, w = attention(q, k, v, mask, bias, backend=backend, need_weights=True)
    assert_close(w, want_w.float())


@pytest.mark.parametrize("case", sorted(CASES))
def test_naive_and_sdpa_agree(case):
    torch.manual_seed(1)
    q, k, v, mask, bias = CASES[case]()
    a, _ = attention(q, k, v, mask, bias, backend="naive")
    b, _ = attention(q, k, v, mask, bias, backend="sdpa")
    assert_close(a, b)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_is_causal_flag_equals_explicit_mask(backend):
    q, k, v = rand(2, 2, 6, 4), rand(2, 2, 6, 4), rand(2, 2, 6, 4)
    a, _ = attention(q, k, v, backend=backend, is_causal=True)
    b, _ = attention(q, k, v, causal_mask(6), backend=backend)
    assert_close(a, b)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_fully_masked_rows_are_zero_not_nan_forward_and_backward(backend):
    q, k, v = (rand(2, 2, 4, 8).requires_grad_() for _ in range(3))
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    mask[0, :, 2] = False  # query row 2 of batch 0 sees nothing
    mask[1] = False  # batch 1 sees nothing at all
    out, _ = attention(q, k, v, mask, rand(1, 2, 4, 4), backend=backend)
    assert torch.isfinite(out).all()
    assert (out[0, :, 2] == 0).all() and (out[1] == 0).all()
    assert out[0, :, 0].abs().sum() > 0
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[1] == 0).all()


def test_scale_argument_is_used(attention_reference):
    q, k, v = rand(1, 1, 3, 4), rand(1, 1, 3, 4), rand(1, 1, 3, 4)
    want, _ = attention_reference(q, k, v, scale=1.0)
    for backend in ("naive", "sdpa"):
        out, _ = attention(q, k, v, scale=1.0, backend=backend)
        assert_close(out, want.float())


def test_dropout_zero_in_eval_and_active_in_training():
    q, k, v = rand(2, 2, 16, 8), rand(2, 2, 16, 8), rand(2, 2, 16, 8)
    a, _ = attention(q, k, v, dropout=0.0, backend="naive")
    torch.manual_seed(0)
    b, _ = attention(q, k, v, dropout=0.5, backend="naive")
    assert not torch.allclose(a, b)


def test_gradcheck_float64_with_mask_and_bias():
    torch.manual_seed(0)
    q, k, v = (rand(1, 2, 4, 3, dtype=torch.float64).requires_grad_() for _ in range(3))
    bias = rand(1, 2, 4, 4, dtype=torch.float64).requires_grad_()
    mask = combine_masks(causal_mask(4), padding_mask(torch.tensor([[0, 1, 1, 1]]).bool()))
    for backend in ("naive", "sdpa"):
        assert torch.autograd.gradcheck(
            lambda q, k, v, b: attention(q, k, v, mask, b, backend=backend)[0], (q, k, v, bias)
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(q=rand(2, 6, 8), k=rand(2, 6, 8), v=rand(2, 6, 8)), r"q \(B, H, T, Dh\)"),
        (dict(q=rand(2, 4, 6, 8), k=rand(2, 4, 6, 4), v=rand(2, 4, 6, 4)), "head dim"),
        (dict(q=rand(2, 4, 6, 8), k=rand(2, 3, 6, 8), v=rand(2, 3, 6, 8)), "multiple of key/value heads"),
        (dict(q=rand(2, 4, 6, 8), k=rand(2, 4, 6, 8), v=rand(2, 4, 5, 8)), "must agree"),
        (dict(mask=torch.ones(2, 1, 6, 5, dtype=torch.bool)), r"does not broadcast to \(B, H, T, S\) = \(2, 4, 6, 6\)"),
        (dict(mask=torch.ones(2, 1, 6, 6)), "must be a bool tensor"),
        (dict(bias=torch.ones(1, 3, 6, 6)), r"bias of shape \(1, 3, 6, 6\)"),
        (dict(q=rand(2, 4, 6, 8).double()), "dtypes differ"),
        (dict(backend="nope"), "unknown attention backend"),
        (dict(k=rand(2, 4, 7, 8), v=rand(2, 4, 7, 8), is_causal=True), "is_causal needs T == S"),
        (dict(dropout=1.5), "dropout must lie in"),
    ],
)
def test_errors_name_the_problem(kwargs, match):
    args = dict(q=rand(2, 4, 6, 8), k=rand(2, 4, 6, 8), v=rand(2, 4, 6, 8))
    args.update(kwargs)
    q, k, v = args.pop("q"), args.pop("k"), args.pop("v")
    with pytest.raises(ValueError, match=match):
        attention(q, k, v, **args)


def test_registry_lists_core_backends():
    assert {"naive", "sdpa"} <= set(available_backends())


def test_query_padding_mask_combines_to_full_mask():
    valid = torch.tensor([[1, 1, 0]]).bool()
    m = combine_masks(padding_mask(valid), query_padding_mask(valid))
    assert m.shape == (1, 1, 3, 3)
    assert m[0, 0].tolist() == [[True, True, False], [True, True, False], [False, False, False]]
