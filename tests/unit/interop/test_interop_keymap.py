"""Key-map rules: placeholder expansion, prefixes, and transforms that invert each other."""

import pytest
import torch

from attnlab.interop.keymap import FUSE, IDENTITY, TRANSPOSE, Rule, expand_rules, squeeze_leading


def test_expansion_covers_every_layer_and_combination():
    rules = expand_rules(
        [Rule("blocks.{i}.w", "h.{i}.w"), Rule("enc.{e}.dec.{d}", ("a.{e}", "b.{d}"), FUSE), Rule("emb", "wte")],
        {"i": 3, "e": 2, "d": 2},
    )
    assert [r.ours for r in rules[:3]] == ["blocks.0.w", "blocks.1.w", "blocks.2.w"]
    assert ("enc.1.dec.0", ("a.1", "b.0")) in [(r.ours, r.hf_keys) for r in rules]
    assert len(rules) == 3 + 4 + 1


def test_unknown_placeholder_is_an_error():
    with pytest.raises(ValueError, match=r"placeholders \['j'\]"):
        expand_rules([Rule("x.{j}", "y.{j}")], {"i": 2})


def test_prefixes_apply_to_both_sides():
    rule = Rule("blocks.0.w", ("q", "k"), FUSE).with_prefixes("bert.", "encoder.")
    assert rule.ours == "bert.blocks.0.w" and rule.hf_keys == ("encoder.q", "encoder.k") and rule.transform is FUSE


@pytest.mark.parametrize("transform, n, shapes", [
    (IDENTITY, 1, [(4, 3)]),
    (TRANSPOSE, 1, [(4, 3)]),
    (FUSE, 3, [(4, 3)] * 3),
    (FUSE, 2, [(5,)] * 2),
    (squeeze_leading(2), 1, [(1, 7, 3)]),
])
def test_transforms_round_trip(transform, n, shapes):
    hf = [torch.randn(s) for s in shapes]
    ours = transform.to_ours(hf)
    back = transform.to_hf(ours, n)
    assert len(back) == n and all(torch.equal(a, b) for a, b in zip(back, hf))


def test_transpose_turns_conv1d_into_linear_layout():
    conv_w = torch.randn(8, 24)  # (in, out) as HF Conv1D stores it
    linear = torch.nn.Linear(8, 24, bias=False)
    linear.weight.data.copy_(TRANSPOSE.to_ours([conv_w]))
    x = torch.randn(2, 8)
    torch.testing.assert_close(linear(x), x @ conv_w)


def test_fuse_stacks_in_order():
    q, k, v = torch.zeros(2, 2), torch.ones(2, 2), torch.full((2, 2), 2.0)
    assert FUSE.to_ours([q, k, v])[:, 0].tolist() == [0, 0, 1, 1, 2, 2]


def test_identity_refuses_several_tensors():
    with pytest.raises(ValueError, match="exactly one"):
        IDENTITY.to_ours([torch.zeros(1), torch.zeros(1)])
