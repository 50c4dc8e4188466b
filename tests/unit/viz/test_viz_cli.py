"""`attnlab viz attention` and `attnlab viz heads` end to end on a saved tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.cli.main import main


def test_viz_attention_html_and_static_views(gpt_dir, tmp_path, capsys):
    html = tmp_path / "view.html"
    assert main(["viz", "attention", "--model", str(gpt_dir), "--text", "the cat sat", "--out", str(html),
                 "--layers", "-1", "--heads", "0,2"]) == 0
    page = html.read_text(encoding="utf-8")
    assert '"layers":[1]' in page and '"heads":[0,2]' in page and '"<bos>"' in page
    assert "wrote" in capsys.readouterr().out
    for view, extra in (("grid", []), ("average", []), ("steps", ["--max-new-tokens", "5"])):
        png = tmp_path / f"{view}.png"
        assert main(["viz", "attention", "--model", str(gpt_dir), "--text", "the cat", "--out", str(png),
                     "--view", view, *extra]) == 0
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_viz_heads_prints_ranked_table_and_saves_grid(gpt_dir, tmp_path, capsys):
    png, js = tmp_path / "heads.png", tmp_path / "heads.json"
    code = main(["viz", "heads", "--model", str(gpt_dir), "--text", "the cat sat on the mat, the cat sat.",
                 "--top", "2", "--out", str(png), "--json", str(js), "--probe-len", "8"])
    assert code == 0
    out = capsys.readouterr().out
    for role in ("previous", "delimiter", "rare", "duplicate", "induction", "broad", "focused"):
        assert role in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    scores = json.loads(js.read_text())["self"]
    assert scores["layers"] == [0, 1] and len(scores["scores"]["induction"][0]) == 4


def test_viz_heads_on_an_encoder(tmp_path, char_tokenizer, capsys):
    bert = pytest.importorskip("attnlab.models.bert")
    from attnlab.models import from_name

    torch.manual_seed(0)
    tok = char_tokenizer
    model = bert.BertForMaskedLM(from_name("bert-tiny", vocab_size=tok.vocab_size, pad_id=tok.pad_id))
    try:
        model.save_pretrained(tmp_path / "bert")
    except Exception as e:  # the BERT adapter is another area's work; skip until it can save
        pytest.skip(f"BERT save_pretrained unavailable: {e}")
    tok.save(tmp_path / "bert")
    assert main(["viz", "heads", "--model", str(tmp_path / "bert"), "--text", "the cat, the dog.",
                 "--out", str(tmp_path / "h.png")]) == 0
    out = capsys.readouterr().out
    assert "next" in out and "induction" not in out  # bidirectional: next-token, no induction


def test_viz_errors_are_one_line(tmp_path, gpt_dir, capsys):
    assert main(["viz", "attention", "--model", str(tmp_path / "missing"), "--text", "x"]) == 2
    assert "no such model directory" in capsys.readouterr().err
    assert main(["viz", "attention", "--model", str(gpt_dir), "--text", "x", "--out", str(tmp_path / "a.txt")]) == 2
    assert ".html" in capsys.readouterr().err
    assert main(["viz", "attention", "--model", str(gpt_dir), "--text", "x", "--heads", "9"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["viz", "attention", "--model", str(gpt_dir), "--text", "the", "--view", "steps",
                 "--out", str(tmp_path / "s.png")]) == 2
    assert "--max-new-tokens" in capsys.readouterr().err


def test_viz_attention_on_a_vision_model(tmp_path, capsys):
    vit = pytest.importorskip("attnlab.models.vit")
    image_mod = pytest.importorskip("PIL.Image", reason="reading images needs pillow")
    import numpy as np

    from attnlab.models import from_name

    torch.manual_seed(0)
    model = vit.ViTForImageClassification(from_name("vit-tiny"))
    model.save_pretrained(tmp_path / "vit")
    pixels = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype("uint8")
    image_mod.fromarray(pixels).save(tmp_path / "img.png")
    for view in ("rollout", "patches"):
        out = tmp_path / f"{view}.png"
        assert main(["viz", "attention", "--model", str(tmp_path / "vit"), "--image", str(tmp_path / "img.png"),
                     "--view", view, "--out", str(out)]) == 0
        assert out.read_bytes()[:4] == b"\x89PNG"
    html = tmp_path / "vit.html"
    assert main(["viz", "attention", "--model", str(tmp_path / "vit"), "--image", str(tmp_path / "img.png"),
                 "--out", str(html)]) == 0
    page = html.read_text(encoding="utf-8")
    assert '"[CLS]"' in page and '"r3c3"' in page
    assert main(["viz", "attention", "--model", str(tmp_path / "vit"), "--text", "hello"]) == 2
    assert "vision model" in capsys.readouterr().err
