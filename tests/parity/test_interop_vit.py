"""ViT parity: tiny random HF ViTForImageClassification / ViTModel checkpoints, loaded through our
converter, give the same logits, pooled output and every hidden state; interpolated position
embeddings agree at other image sizes; our models saved back load in HF with the same outputs.

Run with ``-s`` to see the max abs differences."""

import json

import pytest
import torch
from torch.testing import assert_close

import attnlab
from attnlab.interop import CheckpointError
from attnlab.models import ViTForImageClassification, ViTModel, from_name

transformers = pytest.importorskip("transformers")

LABELS = {0: "cat", 1: "dog", 2: "bird", 3: "fish", 4: "frog"}


def report(name: str, diff: float) -> None:
    print(f"\n{name}: max abs diff {diff:.3e}")


def hf_config(attn_implementation: str = "sdpa", **overrides):
    return transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48, image_size=32,
        patch_size=8, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        attn_implementation=attn_implementation, **overrides,
    )


def pixels(batch: int = 3, size: tuple[int, int] = (32, 32)) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, 3, *size)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_vit_classifier_hf_to_attnlab_logits_and_hidden_states(tmp_path, attn_implementation):
    torch.manual_seed(0)
    theirs = transformers.ViTForImageClassification(hf_config(attn_implementation)).eval()
    theirs.save_pretrained(tmp_path)
    ours = attnlab.from_pretrained(tmp_path)
    assert isinstance(ours, ViTForImageClassification) and not ours.training
    assert ours.vit.pooler is None and ours.config.id2label == LABELS
    x = pixels()
    with torch.no_grad():
        want = theirs(x, output_hidden_states=True)
        logits, hidden = ours.forward_with_hidden(x)
    assert len(hidden) == len(want.hidden_states) == 4
    assert_close(logits, want.logits)
    for a, b in zip(hidden, want.hidden_states, strict=True):
        assert_close(a, b)
    report(f"vit logits ({attn_implementation})", (logits - want.logits).abs().max().item())
    report("vit hidden states", max((a - b).abs().max().item() for a, b in zip(hidden, want.hidden_states)))


def test_vit_model_with_pooler_hf_to_attnlab(tmp_path):
    torch.manual_seed(0)
    theirs = transformers.ViTModel(hf_config()).eval()  # HF's ViTModel has a pooler by default
    theirs.save_pretrained(tmp_path)
    ours = attnlab.from_pretrained(tmp_path)
    assert isinstance(ours, ViTModel) and ours.pooler is not None
    x = pixels()
    with torch.no_grad():
        want = theirs(x)
        last = ours(x)
        pooled = ours.pool(last)
    assert_close(last, want.last_hidden_state)
    assert_close(pooled, want.pooler_output)
    report("vit pooler output", (pooled - want.pooler_output).abs().max().item())


@pytest.mark.parametrize("size", [(48, 48), (40, 24)])
def test_vit_interpolated_positions_match_hf(tmp_path, size):
    torch.manual_seed(0)
    theirs = transformers.ViTForImageClassification(hf_config()).eval()
    theirs.save_pretrained(tmp_path)
    ours = attnlab.from_pretrained(tmp_path)
    x = pixels(2, size)
    with torch.no_grad():
        want = theirs(x, interpolate_pos_encoding=True).logits
        got = ours(x, interpolate_pos_encoding=True)
    assert_close(got, want)
    report(f"vit interpolated {size} logits", (got - want).abs().max().item())


def test_vit_attnlab_to_hf(tmp_path):
    torch.manual_seed(2)
    ours = ViTForImageClassification(from_name("vit-tiny", id2label=LABELS)).eval()
    ours.save_pretrained(tmp_path / "cls")
    theirs = transformers.ViTForImageClassification.from_pretrained(tmp_path / "cls").eval()
    assert theirs.config.id2label == LABELS
    x = pixels()
    with torch.no_grad():
        want, got = theirs(x).logits, ours(x)
    assert_close(got, want)
    report("vit attnlab->HF logits", (got - want).abs().max().item())
    bare = ViTModel(from_name("vit-tiny")).eval()
    bare.save_pretrained(tmp_path / "bare")
    theirs_bare = transformers.ViTModel.from_pretrained(tmp_path / "bare").eval()
    with torch.no_grad():
        out = theirs_bare(x)
        assert_close(bare(x), out.last_hidden_state)
        assert_close(bare.pool(bare(x)), out.pooler_output)


def test_vit_unsupported_configs_raise_checkpoint_error(tmp_path):
    torch.manual_seed(0)
    transformers.ViTForImageClassification(hf_config()).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for bad, match in (
        ({"qkv_bias": False}, "qkv_bias"),
        ({"image_size": [32, 48]}, "square"),
        ({"hidden_act": "quick_gelu"}, "hidden_act"),
        ({"hidden_size": 30}, "inconsistent|divisible"),
    ):
        (tmp_path / "config.json").write_text(json.dumps({**cfg, **bad}))
        with pytest.raises(CheckpointError, match=match):
            attnlab.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "patch_size": 4}))  # position table no longer fits
    with pytest.raises(CheckpointError, match="position_embeddings"):
        attnlab.from_pretrained(tmp_path)
