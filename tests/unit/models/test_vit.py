"""ViT: presets and parameter counts, patch embedding against a float64 reference, position
interpolation, batch independence, backends, pooler, labels, config round trip and input errors."""

import json

import pytest
import torch
from torch.testing import assert_close

from attnlab.models import ViTConfig, ViTForImageClassification, ViTModel, config_from_dict, from_name


def tiny(**overrides) -> ViTForImageClassification:
    torch.manual_seed(0)
    return ViTForImageClassification(from_name("vit-tiny", **overrides)).eval()


def images(B: int = 3, size: int = 32) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(B, 3, size, size)


def _vit_count(D: int, F: int, L: int, C: int, P: int, N: int, K: int) -> int:
    embed = C * P * P * D + D + D + (N + 1) * D  # patch conv (+ bias), [CLS], positions
    layer = 4 * (D * D + D) + (D * F + F + F * D + D) + 2 * 2 * D
    return embed + L * layer + 2 * D + (D * K + K)


def test_vit_base_has_86m_parameters():
    with torch.device("meta"):
        cls = ViTForImageClassification(from_name("vit-base"))
        bare = ViTModel(from_name("vit-base"))
    n = cls.num_parameters()
    assert n == _vit_count(768, 3072, 12, 3, 16, 196, 1000) == 86_567_656  # the paper's "86M" for ViT-B
    assert bare.num_parameters() == n - (768 * 1000 + 1000) + (768 * 768 + 768) == 86_389_248  # pooler, no head
    assert cls.vit.pooler is None and bare.pooler is not None


def test_shapes_and_bare_model_output():
    model = tiny()
    x = images()
    with torch.no_grad():
        logits = model(x)
        hidden = model.vit(x)
        bare = ViTModel(model.config, add_pooler=True).eval()
    assert logits.shape == (3, 10) and hidden.shape == (3, 1 + 16, 32)
    assert_close(logits, model.classifier(hidden[:, 0]))
    assert bare.pool(bare(x)).shape == (3, 32)


def test_patch_embedding_matches_float64_unfold_reference():
    emb = tiny().vit.embeddings
    x = images(2)
    with torch.no_grad():
        got = emb(x)  # (B, 1 + N, D)
    P = 8
    patches = x.double().unfold(2, P, P).unfold(3, P, P)  # (B, C, 4, 4, P, P)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 16, 3 * P * P)  # row-major grid, (C, P, P) per patch
    w = emb.patch.weight.double().reshape(32, -1)
    ref = patches @ w.T + emb.patch.bias.double()  # (B, N, D)
    ref = torch.cat([emb.cls_token.double().expand(2, 1, 32), ref], dim=1) + emb.pos.weight.double()
    assert_close(got, ref.float())  # fp32 tolerances against the float64 reference


def test_position_table_interpolation():
    emb = tiny().vit.embeddings
    table = emb.pos.weight
    assert emb.position_table(4, 4) is table  # the training grid uses the learned table itself
    resized = emb.position_table(6, 3)
    assert resized.shape == (1 + 18, 32)
    assert_close(resized[0], table[0])  # [CLS] position kept
    flat = tiny(image_size=32).vit.embeddings
    with torch.no_grad():
        flat.pos.weight[1:] = 0.25  # a constant grid stays constant under bicubic resizing
    assert_close(flat.position_table(5, 7)[1:], torch.full((35, 32), 0.25))
    model = tiny()
    with torch.no_grad():
        assert_close(model(images()), model(images(), interpolate_pos_encoding=True))
        assert model(images(2, 48), interpolate_pos_encoding=True).shape == (2, 10)


def test_rows_are_independent_and_backends_agree():
    model, naive = tiny(), tiny(backend="naive")
    x = images(4)
    with torch.no_grad():
        full = model(x)
        assert_close(full[1:3], model(x[1:3]))
        assert_close(full, naive(x))


def test_forward_with_hidden():
    model = tiny()
    x = images()
    with torch.no_grad():
        logits, hidden = model.forward_with_hidden(x)
        assert_close(logits, model(x))
        assert_close(model.vit.final_norm(hidden[-1]), model.vit(x))
        assert_close(hidden[0], model.vit.embeddings(x))
    assert len(hidden) == 3


def test_labels_and_config_round_trip(tmp_path):
    cfg = from_name("vit-tiny", id2label={0: "cat", 1: "dog"})
    assert cfg.num_labels == 2 and cfg.label2id == {"cat": 0, "dog": 1}
    cfg.to_json(tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())  # id2label keys become strings in JSON
    assert config_from_dict(data) == cfg == ViTConfig.from_json(tmp_path / "c.json")
    with pytest.raises(ValueError, match="does not invert"):
        from_name("vit-tiny", id2label={0: "cat"}, label2id={"dog": 3})


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(patch_size=64), "exceeds image_size"),
        (dict(n_heads=5), "divisible"),
        (dict(activation="tanh"), "unknown activation"),
        (dict(num_labels=0), "num_labels"),
    ],
)
def test_bad_configs_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        from_name("vit-tiny", **overrides)


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(images(size=48))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="smaller than one"):
        model(torch.randn(1, 3, 4, 4), interpolate_pos_encoding=True)
    with pytest.raises(ValueError, match="without a pooler"):
        model.vit.pool(model.vit(images()))
    with pytest.raises(ValueError, match="needs a ViTConfig"):
        ViTModel(from_name("t5-tiny"))
