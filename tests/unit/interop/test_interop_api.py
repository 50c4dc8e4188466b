"""from_pretrained / save_pretrained: round trips, shards, pickle refusal, and errors that name keys."""

import json

import pytest
import torch

import attnlab
from attnlab.interop import CheckpointError, read_safetensors, write_safetensors
from attnlab.interop.api import INDEX_NAME, WEIGHTS_NAME
from attnlab.interop.registry import adapter_for_hf, adapter_for_model, adapter_import_errors, supported_hf_model_types
from attnlab.models import (
    GPT,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
    from_name,
)

CLASSES = [
    (GPT, "gpt-tiny"),
    (BertModel, "bert-tiny"),
    (BertForMaskedLM, "bert-tiny"),
    (BertForSequenceClassification, "bert-tiny"),
    (DistilBertModel, "distilbert-tiny"),
    (DistilBertForMaskedLM, "distilbert-tiny"),
    (DistilBertForSequenceClassification, "distilbert-tiny"),
]


def make(cls=GPT, preset="gpt-tiny", **overrides):
    torch.manual_seed(0)
    return cls(from_name(preset, **overrides)).eval()


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("cls, preset", CLASSES, ids=[c.__name__ for c, _ in CLASSES])
def test_save_then_load_restores_class_config_and_weights(tmp_path, cls, preset):
    model = make(cls, preset)
    model.save_pretrained(tmp_path)
    again = attnlab.from_pretrained(tmp_path)
    assert type(again) is cls and not again.training
    assert again.config == model.config
    assert_same_weights(again, model)


def test_tied_weights_are_written_once(tmp_path):
    make().save_pretrained(tmp_path / "gpt")
    make(BertForMaskedLM, "bert-tiny").save_pretrained(tmp_path / "bert")
    gpt = read_safetensors(tmp_path / "gpt" / WEIGHTS_NAME)
    bert = read_safetensors(tmp_path / "bert" / WEIGHTS_NAME)
    assert "transformer.wte.weight" in gpt and "lm_head.weight" not in gpt
    assert "bert.embeddings.word_embeddings.weight" in bert and "cls.predictions.decoder.weight" not in bert


def test_config_json_names_the_hf_architecture(tmp_path):
    make(DistilBertForSequenceClassification, "distilbert-tiny", id2label={0: "no", 1: "yes"}).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "distilbert" and cfg["architectures"] == ["DistilBertForSequenceClassification"]
    assert cfg["id2label"] == {"0": "no", "1": "yes"} and cfg["dim"] == 32


def test_sharded_save_and_load(tmp_path):
    model = make()
    model.save_pretrained(tmp_path, max_shard_bytes=20_000)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and not (tmp_path / WEIGHTS_NAME).exists()
    assert_same_weights(attnlab.from_pretrained(tmp_path), model)
    model.save_pretrained(tmp_path)  # a later single-file save removes the stale shards and index
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", WEIGHTS_NAME]


def test_shard_index_cannot_escape_the_directory(tmp_path):
    make().save_pretrained(tmp_path, max_shard_bytes=20_000)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    key = next(iter(index["weight_map"]))
    index["weight_map"][key] = "../outside.safetensors"
    (tmp_path / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="must be a file name in the same folder"):
        attnlab.from_pretrained(tmp_path)


def test_shard_missing_a_listed_key_is_reported(tmp_path):
    make().save_pretrained(tmp_path, max_shard_bytes=20_000)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    index["weight_map"]["transformer.ghost.weight"] = next(iter(index["weight_map"].values()))
    (tmp_path / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="transformer.ghost.weight"):
        attnlab.from_pretrained(tmp_path)


def test_pickle_checkpoints_are_refused_unless_allowed(tmp_path):
    model = make()
    model.save_pretrained(tmp_path)
    state = read_safetensors(tmp_path / WEIGHTS_NAME)
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="pickle files can run arbitrary code"):
        attnlab.from_pretrained(tmp_path)
    assert_same_weights(attnlab.from_pretrained(tmp_path, allow_pickle=True), model)


def test_missing_unexpected_and_mismatched_keys_are_named(tmp_path):
    make().save_pretrained(tmp_path)
    path = tmp_path / WEIGHTS_NAME
    state = read_safetensors(path)
    del state["transformer.h.1.ln_2.bias"]
    state["transformer.h.9.extra.weight"] = torch.zeros(2)
    write_safetensors(path, state)
    named = r"missing \(1\): blocks\.1\.norm2\.bias.*unexpected \(1\): transformer\.h\.9\.extra\.weight"
    with pytest.raises(CheckpointError, match=named):
        attnlab.from_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="blocks.1.norm2.bias"):
        model, report = attnlab.from_pretrained(tmp_path, strict=False, output_loading_info=True)
    assert report.missing == ["blocks.1.norm2.bias"] and report.unexpected == ["transformer.h.9.extra.weight"]
    state["transformer.wpe.weight"] = torch.zeros(32, 32)
    write_safetensors(path, state)
    named = r"pos\.module\.weight <- transformer\.wpe\.weight: checkpoint \(32, 32\) vs model \(64, 32\)"
    with pytest.raises(CheckpointError, match=named):
        attnlab.from_pretrained(tmp_path, strict=False)


def test_config_problems_raise_checkpoint_errors(tmp_path):
    make().save_pretrained(tmp_path)
    cfg_path = tmp_path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for change, message in [
        ({"model_type": "llama"}, "no attnlab adapter for HF model_type 'llama'"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ({"activation_function": "quick_gelu"}, "quick_gelu"),
        ({"n_head": 5}, "divisible by n_heads"),
        ({"architectures": ["GPT2ForTokenClassification"]}, "does not provide"),
    ]:
        cfg_path.write_text(json.dumps({**cfg, **change}))
        with pytest.raises(CheckpointError, match=message):
            attnlab.from_pretrained(tmp_path)
    cfg_path.write_text(json.dumps({k: v for k, v in cfg.items() if k != "n_layer"}))
    with pytest.raises(CheckpointError, match="lacks the field 'n_layer'"):
        attnlab.from_pretrained(tmp_path)
    cfg_path.write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        attnlab.from_pretrained(tmp_path)
    cfg_path.unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        attnlab.from_pretrained(tmp_path)


def test_paths_that_are_not_checkpoint_directories(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="does not exist"):
        attnlab.from_pretrained(tmp_path / "nowhere" / "deeper")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        attnlab.from_pretrained(tmp_path / "file.txt")
    make().save_pretrained(tmp_path / "empty")
    (tmp_path / "empty" / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="no weights found"):
        attnlab.from_pretrained(tmp_path / "empty")
    hub = pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError, match="could not resolve 'someone/some-model' on the hub"):
        attnlab.from_pretrained("someone/some-model")


def test_model_class_choice_and_overrides(tmp_path):
    make(BertForMaskedLM, "bert-tiny").save_pretrained(tmp_path)
    assert type(BertForMaskedLM.from_pretrained(tmp_path)) is BertForMaskedLM
    with pytest.raises(CheckpointError, match="cannot hold a 'bert' checkpoint"):
        attnlab.from_pretrained(tmp_path, model_class=GPT)
    model = attnlab.from_pretrained(tmp_path, dtype=torch.float64, backend="naive")
    assert model.config.backend == "naive" and model.mlm_head.dense.weight.dtype == torch.float64


def test_models_without_an_hf_equivalent_refuse_to_export(tmp_path):
    with pytest.raises(CheckpointError, match="positional='rope'"):
        make(positional="rope").save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="norm_eps"):
        make(DistilBertModel, "distilbert-tiny", norm_eps=1e-5).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="has no HF export"):
        adapter_for_model("transformer")
    assert not any(tmp_path.iterdir())


def test_registry_knows_the_families():
    assert adapter_import_errors() == {}
    assert {"gpt2", "bert", "distilbert"} <= set(supported_hf_model_types())
    assert adapter_for_hf("distilbert").model_type == "distilbert"
    assert adapter_for_model("gpt").hf_model_type == "gpt2"


def test_attnlab_format_folders_load_through_from_pretrained(tmp_path):
    """Models without an HF equivalent are saved in attnlab's own format; from_pretrained reads them back."""
    from attnlab.interop.native import save_native
    from attnlab.models import Transformer, from_name

    gpt = make(positional="rope", tie_embeddings=True)
    save_native(gpt, tmp_path / "gpt")
    config = json.loads((tmp_path / "gpt" / "config.json").read_text())
    assert config["attnlab_native"] is True and config["positional"] == "rope"
    assert "lm_head.weight" not in read_safetensors(tmp_path / "gpt" / WEIGHTS_NAME)  # tied: stored once
    again = attnlab.from_pretrained(tmp_path / "gpt")
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        torch.testing.assert_close(again(ids), gpt.eval()(ids))
    assert again.lm_head.weight is again.tok_embed.weight  # the tie survives
    half = attnlab.from_pretrained(tmp_path / "gpt", dtype=torch.float64, backend="naive")
    assert half.config.backend == "naive" and half.lm_head.weight.dtype == torch.float64
    with pytest.raises(ValueError, match="model_class applies to HF-format folders"):
        attnlab.from_pretrained(tmp_path / "gpt", model_class=GPT)
    save_native(make(positional="rope").to(torch.bfloat16), tmp_path / "bf16")
    assert attnlab.from_pretrained(tmp_path / "bf16").lm_head.weight.dtype == torch.float32  # the default
    assert attnlab.from_pretrained(tmp_path / "bf16", dtype="auto").lm_head.weight.dtype == torch.bfloat16

    torch.manual_seed(0)
    seq2seq = Transformer(from_name("tiny")).eval()
    save_native(seq2seq, tmp_path / "t")
    src, tgt = torch.tensor([[4, 5, 6]]), torch.tensor([[1, 7]])
    with torch.no_grad():
        torch.testing.assert_close(attnlab.from_pretrained(tmp_path / "t")(src, tgt), seq2seq(src, tgt))


def test_attnlab_format_folder_errors(tmp_path):
    from attnlab.interop.native import save_native

    with pytest.raises(CheckpointError, match="cannot save a Linear"):
        save_native(torch.nn.Linear(2, 2), tmp_path / "x")
    save_native(make(positional="alibi"), tmp_path / "g")
    state = read_safetensors(tmp_path / "g" / WEIGHTS_NAME)
    state.pop(next(iter(state)))
    write_safetensors(tmp_path / "g" / WEIGHTS_NAME, state)
    with pytest.raises(CheckpointError, match="missing"):
        attnlab.from_pretrained(tmp_path / "g")
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    (tmp_path / "g" / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(CheckpointError, match="no attnlab model class for native model_type .bert."):
        attnlab.from_pretrained(tmp_path / "g")
