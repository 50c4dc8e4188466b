"""The Vaswani encoder-decoder: presets, parameter counts, tying, config round trip, errors."""

import json

import pytest
import torch

from attnlab.models import Transformer, TransformerConfig, config_from_dict, from_name
from attnlab.models.common import count_parameters, shift_right


def test_vaswani_base_has_about_63m_parameters():
    model = Transformer(from_name("vaswani-base"))
    # 37k shared embedding (tied with the output layer) + 6 encoder + 6 decoder layers of width 512
    emb = 37000 * 512
    enc = 6 * (4 * (512 * 512 + 512) + (512 * 2048 + 2048 + 2048 * 512 + 512) + 2 * 2 * 512)
    dec = 6 * (8 * (512 * 512 + 512) + (512 * 2048 + 2048 + 2048 * 512 + 512) + 3 * 2 * 512)
    assert model.num_parameters() == emb + enc + dec == 63_082_496


def test_vaswani_big_is_about_213m():
    n = Transformer(from_name("vaswani-big")).num_parameters()
    assert 210e6 < n < 216e6  # the paper's table 3 lists 213M


def test_tied_embeddings_share_one_matrix_and_untied_do_not():
    tied = Transformer(from_name("tiny"))
    assert tied.src_embed.weight is tied.tgt_embed.weight is tied.lm_head.weight
    untied = Transformer(from_name("tiny", tie_embeddings=False, tgt_vocab_size=50))
    assert untied.lm_head.weight.shape == (50, 32)
    assert count_parameters(untied) > count_parameters(tied)
    out = untied(torch.randint(3, 97, (2, 4)), torch.randint(3, 50, (2, 3)))
    assert out.shape == (2, 3, 50)


def test_tie_requires_shared_vocab():
    with pytest.raises(ValueError, match="tie_embeddings needs one shared vocabulary"):
        Transformer(from_name("tiny", tgt_vocab_size=50))


def test_config_json_round_trip(tmp_path):
    cfg = from_name("tiny", n_heads=2)
    cfg.to_json(tmp_path / "c.json")
    back = TransformerConfig.from_json(tmp_path / "c.json")
    assert back == cfg
    assert config_from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg
    with pytest.raises(ValueError, match="unknown TransformerConfig fields"):
        TransformerConfig.from_dict({"d_modell": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        from_name("vaswani-huge")
    with pytest.raises(ValueError, match="divisible"):
        from_name("tiny", n_heads=5)


def test_shift_right():
    labels = torch.tensor([[5, 6, 7, 2], [8, 2, -100, -100]])
    assert shift_right(labels, start_id=1, pad_id=0).tolist() == [[1, 5, 6, 7], [1, 8, 2, 0]]


def test_out_of_range_ids_raise():
    model = Transformer(from_name("tiny"))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 97\)"):
        model(torch.tensor([[1, 200]]), torch.tensor([[1]]))
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 64\)"):
        model(torch.randint(3, 97, (1, 70)), torch.tensor([[1]]))


def test_training_step_reduces_loss():
    torch.manual_seed(0)
    model = Transformer(from_name("tiny"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    src = torch.randint(3, 97, (8, 6))
    labels = src.flip(1)  # learn to reverse
    tgt_in = shift_right(labels, 1, 0)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(src, tgt_in).flatten(0, 1), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
