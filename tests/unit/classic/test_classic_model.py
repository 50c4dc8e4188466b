"""RNN encoder-decoders: shapes and masks on padded batches, padding invariance, teacher forcing vs
step-by-step decoding, float64 re-derivations of one Bahdanau and one Luong step, configs and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import VARIANTS, padded_batch, tiny_config, tiny_model
from torch.testing import assert_close

from attnlab.classic import RNNSeq2Seq, RNNSeq2SeqConfig
from attnlab.interop.errors import CheckpointError
from attnlab.models import config_from_dict, from_name, preset_names

LENGTHS = [7, 4, 1, 5]


def test_shapes_and_alignment_masks_on_padded_batch(variant):
    model = tiny_model(variant)
    src, valid = padded_batch(LENGTHS)
    tgt_in = torch.randint(3, 40, (4, 6))
    logits, align = model.forward_with_alignments(src, tgt_in, valid)
    assert logits.shape == (4, 6, 40)
    assert torch.isfinite(logits).all()
    if VARIANTS[variant]["attention"] == "none":
        assert align is None and not model.has_alignment
        return
    assert align.shape == (4, 6, 7)
    pad = ~valid[:, None, :].expand_as(align)
    assert bool((align[pad] == 0).all()), "alignment must be exactly zero on padding"
    if VARIANTS[variant].get("alignment") == "local-p":
        assert bool((align.sum(-1) <= 1 + 1e-6).all()) and bool((align.sum(-1) > 0).all())
    else:
        assert_close(align.sum(-1), torch.ones(4, 6))


def test_padding_and_batching_do_not_change_a_row(variant):
    """A sentence alone and inside a padded batch (with extra pad columns) gives the same outputs."""
    model = tiny_model(variant)
    src, valid = padded_batch(LENGTHS)
    tgt_in = torch.randint(3, 40, (4, 5))
    extra = F.pad(src, (0, 3)), F.pad(valid, (0, 3))  # three more padding columns
    logits, align = model.forward_with_alignments(*extra[:1], tgt_in, extra[1])
    for b, n in enumerate(LENGTHS):
        one_logits, one_align = model.forward_with_alignments(src[b : b + 1, :n], tgt_in[b : b + 1])
        assert_close(logits[b : b + 1], one_logits, rtol=1e-5, atol=1e-5)
        if one_align is not None:
            assert_close(align[b : b + 1, :, :n], one_align, rtol=1e-5, atol=1e-6)


def test_teacher_forcing_equals_step_by_step_decoding(variant):
    model = tiny_model(variant)
    src, valid = padded_batch(LENGTHS)
    tgt_in = torch.randint(3, 40, (4, 6))
    logits, align = model.forward_with_alignments(src, tgt_in, valid)
    state = model.start(model.encode(src, valid))
    for t in range(6):
        step_logits, state, step_align = model.decode_step(tgt_in[:, t], state)
        assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
        if align is not None:
            assert_close(step_align, align[:, t], rtol=1e-5, atol=1e-6)


def test_dropout_is_active_in_training_only():
    model = tiny_model("bahdanau-gru", dropout=0.5)
    src, valid = padded_batch(LENGTHS)
    tgt_in = torch.randint(3, 40, (4, 3))
    assert_close(model(src, tgt_in, valid), model(src, tgt_in, valid))
    model.train()
    assert not torch.allclose(model(src, tgt_in, valid), model(src, tgt_in, valid))


def _gru_step(rnn: torch.nn.GRU, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step in float64, written out (PyTorch's gate order r, z, n)."""
    w_ih, w_hh = rnn.weight_ih_l0.double(), rnn.weight_hh_l0.double()
    b_ih, b_hh = rnn.bias_ih_l0.double(), rnn.bias_hh_l0.double()
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    r = torch.sigmoid(gi[:, :16] + gh[:, :16])
    z = torch.sigmoid(gi[:, 16:32] + gh[:, 16:32])
    n = torch.tanh(gi[:, 32:] + r * gh[:, 32:])
    return (1 - z) * n + z * h


def _float64_encoder(model: RNNSeq2Seq, src: torch.Tensor, valid: torch.Tensor):
    enc = model.encode(src, valid)
    return enc, enc.memory.double(), enc.hidden[-1].double(), valid


def _masked_softmax64(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    e = torch.exp(scores - scores.max(-1, keepdim=True).values) * valid
    return e / e.sum(-1, keepdim=True)


def test_bahdanau_step_matches_the_paper_equations_in_float64():
    model = tiny_model("bahdanau-gru").double()
    src, valid = padded_batch(LENGTHS)
    dec = model.decoder
    enc, memory, s_prev, _ = _float64_encoder(model, src, valid)
    y_prev = torch.tensor([5, 6, 7, 8])
    logits, _, align = model.decode_step(y_prev, model.start(enc))
    score = dec.attention.score
    keys = memory @ score.key_proj.weight.T + score.key_proj.bias  # U_a h_j
    e_tj = torch.tanh((s_prev @ score.query_proj.weight.T)[:, None] + keys)
    alpha = _masked_softmax64((e_tj @ score.v.weight.T)[..., 0], valid)  # (B, S)
    c_t = (alpha[..., None] * memory).sum(1)
    emb = dec.embed.weight[y_prev]
    s_t = _gru_step(dec.rnn, torch.cat([emb, c_t], -1), s_prev)
    ref = dec.readout.out(torch.tanh(dec.readout.hidden(torch.cat([s_t, c_t, emb], -1))))
    assert_close(align, alpha)
    assert_close(logits, ref)


def test_luong_general_step_matches_the_paper_equations_in_float64():
    model = tiny_model("luong-general-nofeed", cell="gru", n_layers=1).double()
    src, valid = padded_batch(LENGTHS)
    dec = model.decoder
    enc, memory, h_prev, _ = _float64_encoder(model, src, valid)
    y_prev = torch.tensor([9, 4, 3, 11])
    logits, _, align = model.decode_step(y_prev, model.start(enc))
    h_t = _gru_step(dec.rnn, dec.embed.weight[y_prev], h_prev)  # attention from the *current* state
    scores = torch.einsum("bd,bsd->bs", h_t, memory @ dec.attention.score.key_proj.weight.T)
    a_t = _masked_softmax64(scores, valid)
    c_t = (a_t[..., None] * memory).sum(1)
    h_tilde = torch.tanh(dec.readout.hidden(torch.cat([c_t, h_t], -1)))
    assert_close(align, a_t)
    assert_close(logits, dec.readout.out(h_tilde))


def test_input_feeding_feeds_the_attentional_vector():
    model = tiny_model("luong-general")
    src, valid = padded_batch(LENGTHS)
    state = model.start(model.encode(src, valid))
    assert bool((state.feed == 0).all())
    _, state1, _ = model.decode_step(torch.full((4,), 1), state)
    assert state1.feed.shape == (4, 16) and state1.feed.abs().sum() > 0
    assert model.decoder.rnn.input_size == 12 + 16


def test_presets_are_registered_and_build():
    names = preset_names()
    for name in ["rnn-noattn", "rnn-bahdanau", "rnn-luong-dot", "rnn-luong-general", "rnn-luong-concat",
                 "rnn-luong-local", "rnn-noattn-tiny", "rnn-bahdanau-tiny", "rnn-luong-general-tiny",
                 "rnn-luong-local-tiny"]:
        assert name in names
    cfg = from_name("rnn-luong-local")
    assert (cfg.attention, cfg.score, cfg.alignment, cfg.cell) == ("luong", "general", "local-p", "lstm")
    model = RNNSeq2Seq(from_name("rnn-bahdanau-tiny"))
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_config_round_trip_and_validation(tmp_path):
    cfg = tiny_config("luong-local-p")
    cfg.to_json(tmp_path / "c.json")
    assert config_from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg
    assert cfg.decoder_start_id == cfg.bos_id and cfg.tgt_vocab_size == 40 and cfg.d_attn == 16
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNSeq2SeqConfig(cell="rnn")
    with pytest.raises(ValueError, match="attention must be one of"):
        RNNSeq2SeqConfig(attention="luong-general")
    with pytest.raises(ValueError, match="Luong variant"):
        RNNSeq2SeqConfig(attention="bahdanau", alignment="local-p")
    with pytest.raises(ValueError, match="must be even"):
        RNNSeq2SeqConfig(d_hidden=15)
    with pytest.raises(ValueError, match="window must be >= 1"):
        RNNSeq2SeqConfig(attention="luong", window=0)
    with pytest.raises(TypeError, match="RNNSeq2SeqConfig"):
        RNNSeq2Seq(from_name("tiny"))


def test_source_validation_errors():
    model = tiny_model("bahdanau-gru")
    src, valid = padded_batch([3, 2])
    with pytest.raises(ValueError, match="right-padded"):
        model(src, torch.ones(2, 2, dtype=torch.long), valid.flip(1))
    with pytest.raises(ValueError, match="at least one valid token"):
        model(src, torch.ones(2, 2, dtype=torch.long), torch.zeros_like(valid))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 40\)"):
        model(src + 100, torch.ones(2, 2, dtype=torch.long), valid)
    with pytest.raises(ValueError, match="tgt_in must be"):
        model(src, torch.ones(3, 2, dtype=torch.long), valid)


def test_save_load_round_trip(tmp_path, variant):
    model = tiny_model(variant, seed=5)
    model.save(tmp_path / "ckpt")
    back = RNNSeq2Seq.load(tmp_path / "ckpt").eval()
    assert back.config == model.config
    src, valid = padded_batch(LENGTHS)
    tgt_in = torch.randint(3, 40, (4, 4))
    assert_close(back(src, tgt_in, valid), model(src, tgt_in, valid), rtol=0, atol=0)


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="config.json not found"):
        RNNSeq2Seq.load(tmp_path)
    tiny_model("noattn-gru").save(tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    cfg["d_hidden"] = 32
    (tmp_path / "a" / "config.json").write_text(json.dumps(cfg))
    expected = r"does not match the config.*shape \(24, 12\) in the file, \(48, 12\) for the config"
    with pytest.raises(CheckpointError, match=expected):
        RNNSeq2Seq.load(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model_type": "transformer"}))
    with pytest.raises(CheckpointError, match="not 'rnn_seq2seq'"):
        RNNSeq2Seq.load(tmp_path / "a")
