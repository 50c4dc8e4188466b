"""pipeline("fill-mask") and pipeline("feature-extraction"): candidates per mask, hidden states, pooled vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import attnlab
from attnlab.models.bert import mean_pool
from attnlab.pipelines import FeatureExtractionPipeline, FillMaskPipeline


@pytest.fixture(scope="module")
def fill(mlm_dir: Path) -> FillMaskPipeline:
    return attnlab.pipeline("fill-mask", model=mlm_dir)


def test_top_k_candidates_are_the_softmax_at_the_mask(fill: FillMaskPipeline) -> None:
    text = "the cat sat on the [MASK]"
    out = fill(text, top_k=4)
    assert len(out) == 4 and all(set(d) == {"score", "token", "token_str", "sequence"} for d in out)
    ids = fill.tokenizer.encode(text, add_special_tokens=True)
    with torch.no_grad():
        probs = fill.model(torch.tensor([ids])).softmax(-1)[0, ids.index(fill.tokenizer.mask_id)]  # (V,)
    values, index = probs.topk(4)
    assert [d["token"] for d in out] == index.tolist()
    torch.testing.assert_close(torch.tensor([d["score"] for d in out]), values)
    for d in out:
        assert d["token_str"] == fill.tokenizer.decode([d["token"]], skip_special_tokens=False)
        filled = [d["token"] if t == fill.tokenizer.mask_id else t for t in ids]
        assert d["sequence"] == fill.tokenizer.decode(filled)


def test_layouts_for_lists_and_several_masks(fill: FillMaskPipeline) -> None:
    many = fill(["the [MASK] sat", "a dog [MASK] in the park"], top_k=2)
    assert [len(x) for x in many] == [2, 2] and isinstance(many[0][0], dict)
    two = fill("the [MASK] sat on the [MASK]", top_k=3)
    assert len(two) == 2 and [len(x) for x in two] == [3, 3]
    assert all("[MASK]" in d["sequence"] for d in two[0])  # the other mask stays visible, as in HF


def test_targets_restrict_the_candidates(fill: FillMaskPipeline) -> None:
    full = {d["token_str"]: d["score"] for d in fill("the [MASK] sat", top_k=fill.tokenizer.vocab_size)}
    out = fill("the [MASK] sat", targets=["cat", "dog", "film"])
    assert len(out) == 3 and {d["token_str"] for d in out} == {"cat", "dog", "film"}
    for d in out:
        assert d["score"] == pytest.approx(full[d["token_str"]], abs=1e-7)  # scores over the whole vocabulary
    assert len(fill("the [MASK] sat", targets="cat", top_k=5)) == 1


def test_fill_mask_errors(fill: FillMaskPipeline) -> None:
    with pytest.raises(ValueError, match="no mask token"):
        fill("nothing to fill here")
    with pytest.raises(ValueError, match="targets"):
        fill("the [MASK]", targets=[])


# ---- feature extraction -------------------------------------------------------------------------


def test_per_token_hidden_states_in_hf_layout(cls_dir: Path) -> None:
    fe = attnlab.pipeline("feature-extraction", model=cls_dir)  # the encoder of a classifier checkpoint
    text = "the movie was great"
    out = fe(text)
    ids = fe.tokenizer.encode(text, add_special_tokens=True)
    assert len(out) == 1 and len(out[0]) == len(ids) and len(out[0][0]) == 32
    classifier = attnlab.from_pretrained(cls_dir)
    with torch.no_grad():
        hidden = classifier.bert(torch.tensor([ids]))  # (1, T, D)
    torch.testing.assert_close(torch.tensor(out), hidden)
    both = fe([text, "a dog"], return_tensors=True)
    assert both[0].shape == (1, len(ids), 32)
    torch.testing.assert_close(both[0], hidden)


def test_pooling_options(cls_dir: Path) -> None:
    fe = attnlab.pipeline("feature-extraction", model=cls_dir)
    texts = ["the movie was great", "a dog runs in the park"]
    tokens = [torch.tensor(x[0]) for x in fe(texts)]  # (T, D) each
    mean = torch.tensor(fe(texts, pooling="mean"))
    torch.testing.assert_close(mean, torch.stack([t.mean(0) for t in tokens]))
    torch.testing.assert_close(torch.tensor(fe(texts, pooling="cls")), torch.stack([t[0] for t in tokens]))
    torch.testing.assert_close(torch.tensor(fe(texts, pooling="max")), torch.stack([t.max(0).values for t in tokens]))
    unit = torch.tensor(fe(texts, pooling="mean", normalize=True))
    torch.testing.assert_close(unit, F.normalize(mean, dim=-1))
    with pytest.raises(ValueError, match="needs a pooled vector"):
        fe("x", normalize=True)
    with pytest.raises(ValueError, match="sentence-transformers"):
        fe("x", pooling="auto")


def test_gpt_and_t5_features(gpt_dir: Path, t5_dir: Path) -> None:
    fe = attnlab.pipeline("feature-extraction", model=gpt_dir)
    ids = fe.tokenizer.encode("the cat sat")
    with torch.no_grad():
        last = fe.model.forward_with_hidden(torch.tensor([ids]))[1][-1]  # (1, T, D)
    torch.testing.assert_close(torch.tensor(fe("the cat sat")), last)
    fe5 = attnlab.pipeline("feature-extraction", model=t5_dir)
    src = fe5.tokenizer.encode("the cat sat") + [fe5.model.config.eos_id]
    with torch.no_grad():
        memory = fe5.model.encode(torch.tensor([src]))  # (1, S, D)
    torch.testing.assert_close(torch.tensor(fe5("the cat sat")), memory)


def test_auto_pooling_reads_the_sentence_transformers_files(minilm_dir: Path) -> None:
    from attnlab.pipelines.feature_extraction import sentence_transformers_settings

    assert sentence_transformers_settings(minilm_dir) == {"pooling": "mean", "normalize": True, "max_length": 256}


@pytest.mark.slow
def test_minilm_sentence_embeddings_equal_sentence_transformers(minilm_dir: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    sentences = ["A man is eating food.", "Someone is having a meal.", "The sky is blue today.",
                 "Transformers use attention; RNNs use recurrence.", "short"]
    emb: FeatureExtractionPipeline = attnlab.pipeline("feature-extraction", model=minilm_dir, pooling="auto")
    ours = torch.tensor(emb(sentences))  # (5, 384)
    reference = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(sentences, convert_to_tensor=True)
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=1e-4)
    manual = torch.tensor(emb(sentences, pooling="mean", normalize=True))
    torch.testing.assert_close(manual, ours)
    tokens = torch.tensor(emb(sentences[0], pooling=None)[0])  # (T, D) per-token, the same encoder
    torch.testing.assert_close(F.normalize(mean_pool(tokens[None], torch.ones(1, tokens.shape[0])), dim=-1)[0], ours[0])
