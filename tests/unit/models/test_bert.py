"""BERT / DistilBERT: parameter counts, heads, padding and permutation invariants, configs, errors."""

import json

import pytest
import torch
from torch.testing import assert_close

from attnlab.models import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
    config_from_dict,
    from_name,
)
from attnlab.models.bert import mean_pool


def build(cls, preset="bert-tiny", **overrides):
    torch.manual_seed(0)
    return cls(from_name(preset, **overrides)).eval()


def test_bert_base_has_the_published_110m_parameters():
    with torch.device("meta"):
        model = BertModel(from_name("bert-base"))
    # bert-base-uncased incl. pooler: embeddings 23,837,184 + 12 x 7,087,872 + pooler 590,592
    assert model.num_parameters() == 109_482_240


def test_distilbert_base_has_the_published_66m_parameters():
    with torch.device("meta"):
        model = DistilBertModel(from_name("distilbert-base"))
    assert model.num_parameters() == 66_362_880
    assert model.embeddings.token_type is None and model.pooler is None


def test_heads_have_the_documented_shapes():
    ids = torch.randint(1, 128, (2, 7))
    assert build(BertModel)(ids).shape == (2, 7, 32)
    assert build(BertForMaskedLM)(ids).shape == (2, 7, 128)
    assert build(BertForSequenceClassification, num_labels=5)(ids).shape == (2, 5)
    assert build(DistilBertForMaskedLM, "distilbert-tiny")(ids).shape == (2, 7, 128)
    assert build(DistilBertForSequenceClassification, "distilbert-tiny")(ids).shape == (2, 2)


def test_mlm_decoder_is_tied_to_word_embeddings_unless_asked():
    mlm = build(BertForMaskedLM)
    assert mlm.mlm_head.decoder.weight is mlm.bert.embeddings.word.weight
    assert mlm.bert.pooler is None  # HF's BertForMaskedLM has no pooler either
    untied = build(BertForMaskedLM, tie_embeddings=False)
    assert untied.num_parameters() - mlm.num_parameters() == 128 * 32


def test_distilbert_classifier_uses_pre_classifier_not_the_pooler():
    model = build(DistilBertForSequenceClassification, "distilbert-tiny")
    assert model.bert.pooler is None and model.pre_classifier.weight.shape == (32, 32)
    hidden = torch.randn(2, 4, 32)
    assert_close(model.sentence_vector(hidden), torch.relu(model.pre_classifier(hidden[:, 0])))


@pytest.mark.parametrize("cls, preset", [(BertModel, "bert-tiny"), (DistilBertModel, "distilbert-tiny")])
def test_padding_never_changes_real_tokens(cls, preset):
    model = build(cls, preset)
    ids = torch.randint(1, 128, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.arange(10)[None] < 6
    assert_close(model(padded, attention_mask=mask)[:, :6], model(ids))
    assert_close(model(padded, attention_mask=mask.long())[:, :6], model(ids))  # HF-style 0/1 masks work too


def test_without_positions_the_encoder_is_permutation_equivariant():
    model = build(BertModel, positional="none", type_vocab_size=0)
    ids = torch.randint(1, 128, (2, 8))
    perm = torch.randperm(8)
    assert_close(model(ids[:, perm]), model(ids)[:, perm])


@pytest.mark.parametrize("positional", ["rope", "alibi", "sinusoidal"])
def test_other_position_schemes_run_and_depend_on_order(positional):
    model = build(BertModel, positional=positional)
    ids = torch.randint(1, 128, (1, 6))
    out = model(ids, attention_mask=torch.ones(1, 6, dtype=torch.bool))
    assert out.shape == (1, 6, 32)
    perm = torch.tensor([1, 0, 2, 3, 4, 5])  # not a reversal: ALiBi's |i - j| is blind to that one
    assert not torch.allclose(model(ids[:, perm])[:, perm], out)


def test_default_token_types_are_zeros():
    model = build(BertModel)
    ids = torch.randint(1, 128, (2, 5))
    assert_close(model(ids), model(ids, token_type_ids=torch.zeros_like(ids)))
    assert not torch.allclose(model(ids), model(ids, token_type_ids=torch.ones_like(ids)))


def test_forward_with_hidden_has_embeddings_then_every_layer():
    model = build(BertForMaskedLM)
    ids = torch.randint(1, 128, (2, 5))
    logits, hidden = model.forward_with_hidden(ids)
    assert len(hidden) == 3
    assert_close(hidden[-1], model.bert(ids))
    assert_close(logits, model(ids))


def test_mean_pool_ignores_padding():
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert_close(mean_pool(hidden, mask), torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)]))


def test_label_maps_survive_json_and_set_num_labels():
    cfg = from_name("bert-tiny", id2label={0: "neg", 1: "pos", 2: "mixed"})
    assert cfg.num_labels == 3 and cfg.label2id == {"neg": 0, "pos": 1, "mixed": 2}
    again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert isinstance(again, BertConfig) and again.id2label == cfg.id2label
    distil = config_from_dict(from_name("distilbert-tiny").to_dict())
    assert isinstance(distil, DistilBertConfig) and distil.type_vocab_size == 0


def test_bad_configs_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        from_name("bert-tiny", d_model=30)
    with pytest.raises(ValueError, match="does not invert"):
        from_name("bert-tiny", id2label={0: "a"}, label2id={"b": 0})
    with pytest.raises(ValueError, match="needs a DistilBertConfig"):
        DistilBertModel(from_name("bert-tiny"))
    model = build(DistilBertModel, "distilbert-tiny")
    ids = torch.randint(1, 128, (1, 4))
    with pytest.raises(ValueError, match="no token-type embeddings"):
        model(ids, token_type_ids=torch.zeros_like(ids))
    with pytest.raises(ValueError, match="must match ids' shape"):
        model(ids, attention_mask=torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="without a pooler"):
        model.pool(torch.randn(1, 4, 32))
