"""BERT and DistilBERT parity: tiny random HF models (bare, masked-LM, sequence classification),
loaded through our converter, give the same outputs and every hidden state on a padded batch; ours
saved back load in HF with the same outputs."""

import pytest
import torch
from torch.testing import assert_close

import attnlab
from attnlab.models import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
)

transformers = pytest.importorskip("transformers")

V, T = 100, 12
BERT = dict(vocab_size=V, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40, type_vocab_size=3)
DISTIL = dict(vocab_size=V, dim=32, n_layers=3, n_heads=4, hidden_dim=64, max_position_embeddings=40)
LABELS = {0: "neg", 1: "neutral", 2: "pos"}

CASES = {
    "BertModel": (BertModel, BERT),
    "BertForMaskedLM": (BertForMaskedLM, BERT),
    "BertForSequenceClassification": (BertForSequenceClassification, BERT),
    "DistilBertModel": (DistilBertModel, DISTIL),
    "DistilBertForMaskedLM": (DistilBertForMaskedLM, DISTIL),
    "DistilBertForSequenceClassification": (DistilBertForSequenceClassification, DISTIL),
}


def hf_model(name, attn_implementation="sdpa"):
    torch.manual_seed(0)
    kind = transformers.DistilBertConfig if name.startswith("Distil") else transformers.BertConfig
    cfg = kind(**CASES[name][1], id2label=LABELS, attn_implementation=attn_implementation)
    return getattr(transformers, name)(cfg).eval()


def batch(name):
    torch.manual_seed(1)
    ids = torch.randint(1, V, (3, T))
    mask = torch.ones(3, T, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    kwargs = {} if name.startswith("Distil") else {"token_type_ids": torch.randint(0, 3, (3, T))}
    return ids, mask, kwargs


def hf_output(out, name):
    return out.last_hidden_state if name.endswith("Model") else out.logits


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("name", list(CASES))
def test_hf_to_attnlab(tmp_path, name, attn_implementation):
    theirs = hf_model(name, attn_implementation)
    theirs.save_pretrained(tmp_path)
    ours = attnlab.from_pretrained(tmp_path)
    assert type(ours) is CASES[name][0]
    ids, mask, kwargs = batch(name)
    with torch.no_grad():
        want = theirs(ids, attention_mask=mask, output_hidden_states=True, **kwargs)
        got, hidden = ours.forward_with_hidden(ids, attention_mask=mask.bool(), **kwargs)
    assert_close(got, hf_output(want, name))  # padded positions too: BERT masks keys only
    assert len(hidden) == len(want.hidden_states) == 4
    for a, b in zip(hidden, want.hidden_states):
        assert_close(a, b)
    print(f"\n{name} ({attn_implementation}): output max abs diff {(got - hf_output(want, name)).abs().max():.3e}, "
          f"hidden {max((a - b).abs().max().item() for a, b in zip(hidden, want.hidden_states)):.3e}")
    if name.endswith("SequenceClassification"):
        assert ours.config.id2label == LABELS and ours.config.num_labels == 3


@pytest.mark.parametrize("name", list(CASES))
def test_attnlab_to_hf(tmp_path, name):
    cls, _ = CASES[name]
    preset = "distilbert-tiny" if name.startswith("Distil") else "bert-tiny"
    torch.manual_seed(3)
    extra = {} if name.startswith("Distil") else {"type_vocab_size": 3}
    ours = cls(attnlab.from_name(preset, vocab_size=V, id2label=LABELS, **extra)).eval()
    ours.save_pretrained(tmp_path)
    theirs = getattr(transformers, name).from_pretrained(tmp_path).eval()
    ids, mask, kwargs = batch(name)
    with torch.no_grad():
        want = hf_output(theirs(ids, attention_mask=mask, **kwargs), name)
        got = ours(ids, attention_mask=mask.bool(), **kwargs)
    assert_close(got, want)
    print(f"\n{name} attnlab->HF: max abs diff {(got - want).abs().max():.3e}")
    if name.endswith("SequenceClassification"):
        assert theirs.config.id2label == LABELS


def test_bert_mlm_checkpoint_into_bare_model_reports_head_keys(tmp_path):
    hf_model("BertForMaskedLM").save_pretrained(tmp_path)
    with pytest.raises(attnlab.CheckpointError, match="cls.predictions.transform.dense.weight"):
        attnlab.from_pretrained(tmp_path, model_class=BertModel)
    with pytest.warns(UserWarning, match="unexpected"):
        model, report = attnlab.from_pretrained(tmp_path, model_class=BertModel, strict=False, output_loading_info=True)
    assert "pooler.weight" in report.missing  # the MLM checkpoint has no pooler
    assert all(k.startswith("cls.predictions.") for k in report.unexpected)
