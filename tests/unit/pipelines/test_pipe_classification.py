"""pipeline("sentiment-analysis" / "text-classification" / "image-classification"): labels, scores, layouts."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import attnlab
from attnlab.pipelines import ImagePreprocessor, TextClassificationPipeline


@pytest.fixture(scope="module")
def clf(cls_dir: Path) -> TextClassificationPipeline:
    return attnlab.pipeline("sentiment-analysis", model=cls_dir)


def test_scores_are_the_softmax_of_the_model_logits(clf: TextClassificationPipeline) -> None:
    texts = ["the movie was great and fun", "i hate this movie", "a dog"]
    out = clf(texts, top_k=None)
    batch = clf.tokenizer.encode_batch(texts, add_special_tokens=True)
    with torch.no_grad():
        probs = clf.model(batch.ids, attention_mask=batch.valid).softmax(-1)  # (B, C)
    for ranked, row in zip(out, probs):
        assert [d["label"] for d in ranked] == [clf.id2label[int(i)] for i in row.argsort(descending=True)]
        torch.testing.assert_close(torch.tensor([d["score"] for d in ranked]), row.sort(descending=True).values)
        assert sum(d["score"] for d in ranked) == pytest.approx(1.0, abs=1e-6)


def test_output_layouts_follow_hf(clf: TextClassificationPipeline) -> None:
    one = clf("i love this film")
    assert isinstance(one, list) and len(one) == 1 and set(one[0]) == {"label", "score"}
    assert one[0]["label"] in ("negative", "positive")
    many = clf(["i love this film", "bad"])
    assert len(many) == 2 and all(isinstance(d, dict) for d in many)
    assert len(clf("bad", top_k=None)) == 2 and isinstance(clf("bad", top_k=None)[0], dict)
    nested = clf(["bad", "good"], top_k=2)
    assert [len(x) for x in nested] == [2, 2]
    alone = clf("i love this film")[0]  # a text in a padded batch scores as it does alone
    assert many[0]["label"] == alone["label"] and many[0]["score"] == pytest.approx(alone["score"], abs=1e-6)


def test_sigmoid_and_function_to_apply(clf: TextClassificationPipeline) -> None:
    raw = clf("bad", function_to_apply="none", top_k=None)
    sig = clf("bad", function_to_apply="sigmoid", top_k=None)
    by_label = {d["label"]: d["score"] for d in raw}
    for d in sig:
        assert d["score"] == pytest.approx(float(torch.sigmoid(torch.tensor(by_label[d["label"]]))), abs=1e-6)
    with pytest.raises(ValueError, match="function_to_apply"):
        clf("bad", function_to_apply="tanh")
    with pytest.raises(ValueError, match="top_k"):
        clf("bad", top_k=0)


def test_long_text_is_truncated_to_the_context(clf: TextClassificationPipeline) -> None:
    assert clf.model.config.max_len == 64
    assert len(clf("great " * 500)) == 1  # 500 words do not fit 64 positions: cut, not an error


def test_wrong_folder_for_the_task(mlm_dir: Path, cls_dir: Path) -> None:
    with pytest.raises(ValueError, match="BertForMaskedLM.*fill-mask"):
        attnlab.pipeline("text-classification", model=mlm_dir)
    with pytest.raises(ValueError, match="BertForSequenceClassification"):
        attnlab.pipeline("fill-mask", model=cls_dir)


@pytest.mark.slow
def test_fine_tuned_sst2_minilm_if_present() -> None:
    folder = Path("/tmp/sst2-minilm")
    if not (folder / "config.json").is_file():
        pytest.skip("no fine-tuned SST-2 model in /tmp/sst2-minilm (made by `attnlab train classify`)")
    clf = attnlab.pipeline("sentiment-analysis", model=folder)
    good, bad = clf(["a wonderful, moving and beautifully acted film", "a dull, tedious and lifeless mess"])
    assert good["label"] != bad["label"] and good["score"] > 0.5 and bad["score"] > 0.5


# ---- images -----------------------------------------------------------------------------------


def test_image_inputs_of_every_kind_agree(vit_dir: Path, rgb_image: np.ndarray, tmp_path: Path) -> None:
    from PIL import Image

    clf = attnlab.pipeline("image-classification", model=vit_dir)
    pil = Image.fromarray(rgb_image)
    pil.save(tmp_path / "x.png")
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    tensor = torch.from_numpy(rgb_image).permute(2, 0, 1).float() / 255
    results = [clf(x) for x in (pil, rgb_image, str(tmp_path / "x.png"), buf.getvalue(), tensor)]
    for r in results[1:]:
        assert [d["label"] for d in r] == [d["label"] for d in results[0]]
        assert [d["score"] for d in r] == pytest.approx([d["score"] for d in results[0]], abs=1e-5)
    labels = {"cat", "dog", "car", "ship", "tree", "sky", "frog", "bird", "fish", "boat"}
    assert len(results[0]) == 5 and {d["label"] for d in results[0]} <= labels
    assert [len(x) for x in clf([pil, pil], top_k=2)] == [2, 2]


def test_image_scores_equal_the_model_on_hf_preprocessing(vit_dir: Path, rgb_image: np.ndarray) -> None:
    clf = attnlab.pipeline("image-classification", model=vit_dir)
    pixels = torch.from_numpy(rgb_image).permute(2, 0, 1).float() / 255 * 2 - 1  # rescale, normalize 0.5/0.5
    with torch.no_grad():
        probs = clf.model(pixels[None]).softmax(-1)[0]  # (K,)
    out = clf(rgb_image, top_k=None)
    torch.testing.assert_close(torch.tensor([d["score"] for d in out]), probs.sort(descending=True).values)


def test_preprocessor_config_is_read(vit_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "vit"
    shutil.copytree(vit_dir, folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 32, "width": 32}, "image_mean": [0.1, 0.2, 0.3], "image_std": [0.5, 0.4, 0.3],
         "do_rescale": True, "rescale_factor": 0.5 / 255}))
    proc = ImagePreprocessor.for_model(attnlab.from_pretrained(folder).config, folder)
    assert proc.mean == (0.1, 0.2, 0.3) and proc.rescale_factor == pytest.approx(0.5 / 255)
    from PIL import Image

    x = proc(Image.new("RGB", (64, 48), (255, 0, 0)))  # resized to 32 x 32
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([(0.5 - 0.1) / 0.5, (0 - 0.2) / 0.4, (0 - 0.3) / 0.3]))


def test_bad_images_are_clear_errors(vit_dir: Path, tmp_path: Path) -> None:
    clf = attnlab.pipeline("image-classification", model=vit_dir)
    with pytest.raises(ValueError, match="cannot read the image"):
        clf(b"not an image")
    with pytest.raises(FileNotFoundError, match="URLs are not fetched"):
        clf("https://example.com/cat.png")
    with pytest.raises(ValueError, match="values in"):
        clf(np.full((32, 32, 3), 2.0, dtype=np.float32))
    with pytest.raises(TypeError, match="unsupported image type"):
        clf(12)
    from PIL import Image

    bomb = io.BytesIO()
    Image.new("1", (8000, 8000)).save(bomb, format="PNG")  # 64M pixels in a few kB: refused before decoding
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(ValueError, match="exceeds the limit"):
        clf(bomb.getvalue())
