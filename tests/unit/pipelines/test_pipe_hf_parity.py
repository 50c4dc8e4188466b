"""The same saved folder through HF transformers' pipeline() and attnlab's: the same answers.

HF reads our save_pretrained() output and our tokenizer.json (through PreTrainedTokenizerFast),
so each test compares complete pipeline outputs: tokens, labels, texts exactly; scores and
vectors to float32 tolerance.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import attnlab

transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _quiet_hf() -> None:
    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def hf_pipeline(task: str, folder: Path, **kw):  # type: ignore[no-untyped-def]
    return transformers.pipeline(task, model=str(folder), device=-1, **kw)


def assert_same_records(ours: list, theirs: list) -> None:  # type: ignore[type-arg]
    """Lists (nested) of dicts: equal except 'score', which must be close."""
    assert type(ours) is type(theirs) and len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        if isinstance(a, list):
            assert_same_records(a, b)
            continue
        assert set(a) == set(b)
        for key in a:
            if key == "score":
                assert a[key] == pytest.approx(b[key], abs=1e-5)
            else:
                assert a[key] == b[key], key


def test_fill_mask(mlm_dir: Path) -> None:
    ours, theirs = attnlab.pipeline("fill-mask", model=mlm_dir), hf_pipeline("fill-mask", mlm_dir)
    for args, kw in [("the cat sat on the [MASK]", {}), (["a dog [MASK] in the park", "the [MASK] was great"], {}),
                     ("the [MASK] sat on the [MASK]", {"top_k": 3}),
                     ("the [MASK] sat", {"targets": ["cat", "dog", "film"]})]:
        assert_same_records(ours(args, **kw), theirs(args, **kw))


def test_text_classification(cls_dir: Path) -> None:
    ours, theirs = attnlab.pipeline("sentiment-analysis", model=cls_dir), hf_pipeline("sentiment-analysis", cls_dir)
    texts = ["i love this film", "the film was boring and bad", "a dog"]
    assert_same_records(ours(texts[0]), theirs(texts[0]))
    assert_same_records(ours(texts), theirs(texts))
    assert_same_records(ours(texts[1], top_k=None), theirs(texts[1], top_k=None))
    assert_same_records(ours(texts, top_k=2), theirs(texts, top_k=2))


def test_feature_extraction(cls_dir: Path) -> None:
    ours, theirs = attnlab.pipeline("feature-extraction", model=cls_dir), hf_pipeline("feature-extraction", cls_dir)
    for inputs in ("the movie was great", ["a dog runs in the park", "bad"]):
        a, b = ours(inputs), theirs(inputs)
        if isinstance(inputs, str):
            a, b = [a], [b]
        for x, y in zip(a, b):
            torch.testing.assert_close(torch.tensor(x), torch.tensor(y))


def test_text_generation_greedy(gpt_dir: Path) -> None:
    ours, theirs = attnlab.pipeline("text-generation", model=gpt_dir), hf_pipeline("text-generation", gpt_dir)
    for prompt in ("the movie was", "a dog"):
        kw = {"max_new_tokens": 8, "do_sample": False}
        assert ours(prompt, **kw) == theirs(prompt, **kw)


def test_translation_greedy_t5_equals_hf_generate(t5_dir: Path) -> None:
    """transformers 5 dropped its translation pipeline: compare with T5ForConditionalGeneration.generate."""
    ours = attnlab.pipeline("translation_en_to_de", model=t5_dir)
    model = transformers.T5ForConditionalGeneration.from_pretrained(str(t5_dir)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(t5_dir))
    texts = ["the cat sat on the mat", "i love this film"]
    batch = tok(["translate English to German: " + t for t in texts], return_tensors="pt", padding=True)
    with torch.no_grad():
        ids = model.generate(**batch, max_new_tokens=6, do_sample=False, num_beams=1)
    expected = [t.strip() for t in tok.batch_decode(ids, skip_special_tokens=True)]
    assert [d["translation_text"] for d in ours(texts, max_new_tokens=6)] == expected


def test_image_classification(vit_dir: Path, rgb_image: np.ndarray, tmp_path: Path) -> None:
    from PIL import Image

    processor = {"do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2, "do_rescale": True,
                 "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
                 "image_std": [0.5, 0.5, 0.5], "image_processor_type": "ViTImageProcessor"}
    (vit_dir / "preprocessor_config.json").write_text(json.dumps(processor))
    try:
        ours, theirs = attnlab.pipeline("image-classification", model=vit_dir), \
            hf_pipeline("image-classification", vit_dir)
        image = Image.fromarray(rgb_image)
        assert_same_records(ours(image, top_k=4), theirs(image, top_k=4))
        bigger = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8))
        a, b = ours(bigger, top_k=10), theirs(bigger, top_k=10)  # resized to 32 x 32 first
        assert [d["label"] for d in a] == [d["label"] for d in b]
        assert [d["score"] for d in a] == pytest.approx([d["score"] for d in b], abs=2e-3)
    finally:
        (vit_dir / "preprocessor_config.json").unlink()
