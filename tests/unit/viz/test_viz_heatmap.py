"""Matplotlib figures: the drawn arrays are the inputs, labels and shapes are checked, files are written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from attnlab.classic import RNNSeq2Seq, RNNSeq2SeqConfig
from attnlab.interp.heads import HeadScores
from attnlab.viz import (
    patch_weights,
    plot_alignment,
    plot_attention,
    plot_decoder_steps,
    plot_head_scores,
    plot_heads,
    plot_patch_attention,
)


def _png(fig: Figure, tmp_path, name: str) -> bytes:
    path = tmp_path / name
    fig.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def softmax(*shape: int) -> torch.Tensor:
    return torch.softmax(torch.randn(*shape, generator=torch.Generator().manual_seed(0)), -1)


def test_plot_attention_draws_the_matrix_with_labels(tmp_path):
    w = softmax(5, 7)
    keys, queries = list("abcdefg"), list("vwxyz")
    fig = plot_attention(w, queries, keys, title="cross")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), w.numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == keys
    assert [t.get_text() for t in ax.get_yticklabels()] == queries
    _png(fig, tmp_path, "attn.png")
    with pytest.raises(ValueError, match="pick a head"):
        plot_attention(softmax(2, 5, 7))
    with pytest.raises(ValueError, match="labels"):
        plot_attention(w, queries, keys[:3])


def test_long_sequences_thin_the_tick_labels():
    w = softmax(300, 300)
    ax = plot_attention(w, [f"t{i}" for i in range(300)], [f"t{i}" for i in range(300)], max_labels=50).axes[0]
    assert 25 <= len(ax.get_xticks()) <= 50
    assert ax.images[0].get_array().shape == (300, 300)  # the map itself is never subsampled


def test_whitespace_tokens_are_visible():
    ax = plot_attention(softmax(2, 2), [" ", "\n"], ["a", " "]).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["␣", "⏎"]


@pytest.mark.parametrize("average, panels", [(None, 2 * 3), ("heads", 2), ("layers", 3), ("all", 1)])
def test_plot_heads_grid_and_averages(average, panels, tmp_path):
    p = softmax(2, 3, 4, 6)
    fig = plot_heads(p, list("abcd"), list("uvwxyz"), layers=[4, 7], heads=[0, 2, 5], average=average)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == panels
    if average is None:
        assert images[0].get_title() == "layer 4, head 0" and images[-1].get_title() == "layer 7, head 5"
        np.testing.assert_allclose(images[4].images[0].get_array(), p[1, 1].numpy())
    if average == "all":
        np.testing.assert_allclose(images[0].images[0].get_array(), p.mean((0, 1)).numpy(), rtol=1e-6)
    _png(fig, tmp_path, f"heads_{average}.png")
    with pytest.raises(ValueError, match="average"):
        plot_heads(p, average="tokens")


def test_rnn_alignments_from_a_classic_model(tmp_path):
    torch.manual_seed(0)
    config = RNNSeq2SeqConfig(vocab_size=30, d_embed=8, d_hidden=8, max_len=16, dropout=0.0, attention="bahdanau")
    model = RNNSeq2Seq(config).eval()
    src, tgt = torch.randint(4, 30, (2, 6)), torch.randint(4, 30, (2, 4))
    with torch.no_grad():
        _, alignments = model.forward_with_alignments(src, tgt)  # (B, T, S)
    fig = plot_alignment(alignments, [f"s{i}" for i in range(6)], [f"t{i}" for i in range(4)], title="Bahdanau")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), alignments[0].numpy())
    assert ax.xaxis.get_label_position() == "top"
    _png(fig, tmp_path, "alignment.png")


def test_decoder_steps_rows_are_the_generating_steps(tmp_path):
    T = 8
    w = torch.softmax(torch.randn(T, T) + torch.ones(T, T).tril().log(), -1)
    tokens = [f"w{i}" for i in range(T)]
    fig = plot_decoder_steps(w, tokens, prompt_len=3)
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    assert shown.shape == (T - 3, T)  # steps generating tokens 3 .. 7 are rows 2 .. 6
    np.testing.assert_allclose(shown.filled(0), w[2:7].numpy(), atol=1e-7)
    assert shown.mask[0, 3:].all() and not shown.mask[0, :3].any()  # keys the step could not see
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "1: 'w3'"
    cross = plot_decoder_steps(softmax(2, T, 5), tokens, prompt_len=1, keys=list("abcde"))
    assert cross.axes[0].images[0].get_array().shape == (T - 1, 5)
    _png(fig, tmp_path, "steps.png")
    with pytest.raises(ValueError, match="prompt_len"):
        plot_decoder_steps(w, tokens, prompt_len=T)


def test_patch_attention_over_an_image(tmp_path):
    image = torch.rand(3, 32, 32) * 2 - 1  # normalized pixels, (C, Hi, Wi)
    row = softmax(1 + 16)  # [CLS] + 4 x 4 patches
    grid = patch_weights(row, (4, 4), prefix=1)
    np.testing.assert_allclose(grid, row[1:].reshape(4, 4).numpy())
    fig = plot_patch_attention(image, grid, title="[CLS]")
    base, overlay = fig.axes[0].images
    assert base.get_array().shape == (32, 32, 3) and 0 <= base.get_array().min() and base.get_array().max() <= 1
    assert overlay.get_extent() == [0, 32, 32, 0]
    _png(fig, tmp_path, "patches.png")
    with pytest.raises(ValueError, match="prefix"):
        patch_weights(row, (4, 4), prefix=2)
    with pytest.raises(ValueError, match="square"):
        plot_patch_attention(image, torch.rand(15))


def test_head_scores_grid(tmp_path):
    a = HeadScores("encoder.self", [0, 1], [0, 1, 2], {"previous": torch.rand(2, 3), "entropy": torch.rand(2, 3)})
    b = HeadScores("decoder.cross", [0, 1], [0, 1, 2], {"delimiter": torch.full((2, 3), float("nan"))})
    fig = plot_head_scores([a, b])
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["encoder.self: previous", "encoder.self: broad", "decoder.cross: delimiter"]
    _png(fig, tmp_path, "scores.png")
    with pytest.raises(ValueError, match="no head scores"):
        plot_head_scores([HeadScores("self", [0], [0])])
