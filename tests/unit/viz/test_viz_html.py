"""The HTML view's data: quantization and top-k round trips, binning, escaping, self-containment."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch

from attnlab.interp import prepare_inputs, run_with_capture
from attnlab.viz import (
    AttentionGroup,
    bin_edges,
    bin_pattern,
    group_payload,
    render_attention_view,
    save_attention_view,
)


def _arr(b64: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.dtype(dtype).newbyteorder("<"))


def _decode_dense(g: dict) -> np.ndarray:
    L, H, T, S = len(g["layers"]), len(g["heads"]), g["T"], g["S"]
    rowmax = _arr(g["rowmax"], np.float32).reshape(L, H, T, 1)
    return _arr(g["values"], np.uint8).reshape(L, H, T, S) / 255.0 * rowmax


def _page_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="attn-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_dense_payload_round_trips_within_quantization():
    p = torch.softmax(torch.randn(2, 3, 5, 7), -1)
    g = group_payload("self", p, list("abcde"), list("abcdefg"))
    assert g["format"] == "dense" and not g["binned"]
    decoded = _decode_dense(g)
    step = p.amax(-1, keepdim=True).numpy() / 255
    assert (np.abs(decoded - p.numpy()) <= step / 2 + 1e-7).all()


def test_topk_payload_keeps_the_strongest_keys():
    p = torch.softmax(torch.randn(1, 2, 6, 40) * 3, -1)
    g = group_payload("self", p, [str(i) for i in range(6)], [str(j) for j in range(40)], dense_limit=10, top_k=5)
    assert g["format"] == "topk" and g["k"] == 5
    index = _arr(g["index"], np.uint16).reshape(1, 2, 6, 5)
    values = _arr(g["values"], np.uint8).reshape(1, 2, 6, 5)
    expected = p.topk(5, dim=-1).indices.numpy()
    np.testing.assert_array_equal(index, expected)
    assert (values[..., 0] == 255).all()  # the row maximum


def test_binning_keeps_rows_distributions_and_labels_ranges():
    p = torch.softmax(torch.randn(1, 1, 10, 10), -1)
    edges = bin_edges(10, 4)
    assert edges == [0, 2, 5, 8, 10]
    binned = bin_pattern(p, edges, edges)
    assert binned.shape == (1, 1, 4, 4)
    torch.testing.assert_close(binned.sum(-1), torch.ones(1, 1, 4))
    torch.testing.assert_close(binned[0, 0, 0, 0], p[0, 0, :2, :2].sum(-1).mean())
    g = group_payload("self", p, [f"t{i}" for i in range(10)], [f"t{i}" for i in range(10)], max_tokens=4)
    assert g["binned"] and g["T"] == g["S"] == 4
    assert g["queries"][1] == "t2…t4 (3)"


def test_payload_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        group_payload("self", torch.rand(1, 1, 3, 3), ["a"], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\(L, H, T, S\)"):
        group_payload("self", torch.rand(3, 3), ["a"] * 3, ["a"] * 3)


def test_page_is_self_contained_and_escapes_labels(tmp_path):
    evil = ["</script><script>alert(1)</script>", "<b>", "&amp;", "\"q\""]
    page = render_attention_view({"self": AttentionGroup(torch.softmax(torch.randn(2, 4, 4), -1), evil, evil)},
                                 title="<title> & co")
    assert "{{" not in page.split('id="attn-data"')[0]  # every placeholder filled
    assert page.count("</script>") == 2  # the data block and the inline script, nothing injected
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no external resources
    assert "&lt;title&gt; &amp; co" in page
    data = _page_data(page)
    assert data["groups"][0]["queries"] == evil and data["title"] == "<title> & co"


def test_save_from_a_capture_names_groups_and_tokens(transformer_and_tokenizer, tmp_path):
    model, tok = transformer_and_tokenizer
    prepared = prepare_inputs(model, tok, "the cat sat.", target="a dog.")
    _, cap = run_with_capture(model, *prepared.args, heads=[1, 3], layers=[-1], **prepared.kwargs)
    path = save_attention_view(tmp_path / "out" / "view.html", cap, prepared)
    data = _page_data(path.read_text(encoding="utf-8"))
    groups = {g["name"]: g for g in data["groups"]}
    assert list(groups) == ["encoder.self", "decoder.self", "decoder.cross"]
    cross = groups["decoder.cross"]
    assert cross["queries"] == prepared.sides["target"].labels and cross["keys"] == prepared.sides["source"].labels
    assert cross["heads"] == [1, 3] and cross["layers"] == [1]
    np.testing.assert_allclose(_decode_dense(cross)[0], cap.pattern(1, "decoder.cross")[0].numpy(), atol=1 / 255)
    with pytest.raises(ValueError, match="patterns"):
        save_attention_view(tmp_path / "x.html", run_with_capture(model, *prepared.args, points=("q",))[1])


def test_a_single_alignment_matrix_becomes_a_one_head_group():
    alignment = torch.softmax(torch.randn(4, 6), -1)  # e.g. an RNN decoder's (T, S) alignment
    group = AttentionGroup(alignment, list("wxyz"), list("abcdef"))
    assert group.patterns.shape == (1, 1, 4, 6)
    data = _page_data(render_attention_view({"bahdanau": group}))
    np.testing.assert_allclose(_decode_dense(data["groups"][0])[0, 0], alignment.numpy(), atol=1 / 255)
