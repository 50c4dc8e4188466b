"""pipeline(): task names, task inference from folders, and the message when there is no model folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import attnlab
from attnlab.pipelines import PIPELINES, MissingModelError, infer_task


@pytest.mark.parametrize("task", [*PIPELINES, "sentiment-analysis", "translation_en_to_fr"])
def test_without_a_model_the_error_says_what_to_make(task: str) -> None:
    with pytest.raises(MissingModelError) as err:
        attnlab.pipeline(task)
    message = str(err.value)
    assert f"pipeline({task!r})" in message and "model=DIR" in message and "never download" in message
    if task in ("text-generation", "translation", "sentiment-analysis", "text-classification"):
        assert "attnlab train" in message


def test_a_hub_name_is_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(MissingModelError, match="'distilbert-base-uncased' is not a local folder"):
        attnlab.pipeline("sentiment-analysis", model="distilbert-base-uncased")
    with pytest.raises(MissingModelError, match="no config.json"):
        attnlab.pipeline("fill-mask", model=tmp_path)


def test_unknown_task_and_options() -> None:
    with pytest.raises(ValueError, match="unknown pipeline task 'summarize'.*text-generation"):
        attnlab.pipeline("summarize", model="x")
    with pytest.raises(ValueError, match="needs a task"):
        attnlab.pipeline()


def test_task_inferred_from_folders(cls_dir: Path, mlm_dir: Path, gpt_dir: Path, t5_dir: Path, vit_dir: Path,
                                    tmp_path: Path) -> None:
    assert infer_task(cls_dir) == "text-classification"
    assert infer_task(mlm_dir) == "fill-mask"
    assert infer_task(gpt_dir) == "text-generation"
    assert infer_task(t5_dir) == "text2text-generation"
    assert infer_task(vit_dir) == "image-classification"
    assert attnlab.pipeline(model=cls_dir).task == "text-classification"


def test_unknown_option_is_a_type_error(cls_dir: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword"):
        attnlab.pipeline("text-classification", model=cls_dir, pooling="mean")
    clf = attnlab.pipeline("text-classification", model=cls_dir)
    with pytest.raises(TypeError):
        clf("good", temperature=0.5)


def test_trained_folders_from_the_cli_load(tmp_path: Path) -> None:
    """What `attnlab train lm` writes is what pipeline('text-generation') reads."""
    from attnlab.cli.main import main

    data = tmp_path / "text.txt"
    data.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40)
    out = tmp_path / "lm"
    assert main(["train", "lm", "--data", str(data), "--preset", "tiny", "--steps", "2", "--out", str(out),
                 "--no-progress"]) == 0
    gen = attnlab.pipeline(model=out)
    assert gen.task == "text-generation"
    text = gen("First", max_new_tokens=10, do_sample=True, seed=0)[0]["generated_text"]
    assert text.startswith("First") and len(text) > len("First")


def test_translation_folder_from_the_cli_loads(tmp_path: Path) -> None:
    """`attnlab train translate` writes attnlab's own Transformer (no HF class): pipeline('translation') reads it."""
    from attnlab.cli.main import main

    pairs = [("a dog runs", "ein hund rennt"), ("a cat sleeps", "eine katze schläft"), ("a red car", "ein rotes auto")]
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(f"{a}\t{b}" for a, b in pairs * 10) + "\n")
    out = tmp_path / "tr"
    assert main(["train", "translate", "--data", str(data), "--preset", "tiny", "--steps", "2", "--out", str(out),
                 "--no-progress"]) == 0
    tr = attnlab.pipeline(model=out)
    assert tr.task == "translation" and tr.prefix is None  # no T5 prefix for the 2017 Transformer
    out_texts = tr(["a dog runs", "a red car"], max_new_tokens=5)
    assert [set(d) for d in out_texts] == [{"translation_text"}] * 2
    src = tr.encode_prompts(["a dog runs"])[0]
    assert src[-1] == tr.model.config.eos_id
