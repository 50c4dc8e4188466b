"""The task commands end to end with tiny settings: train lm/translate/classify, then use the folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

COMMANDS = ("train", "generate", "translate", "classify", "demo")


def test_help_lists_every_command_with_examples(cli) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run([sys.executable, "-m", "attnlab", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in result.stdout
    for argv in ([name, "--help"] for name in COMMANDS):
        with pytest.raises(SystemExit) as done:
            cli(*argv)
        assert done.value.code == 0
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            cli(name, "--help")
    for task in ("lm", "translate", "classify"):
        with pytest.raises(SystemExit):
            cli("train", task, "--help")


def test_help_epilogs_show_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from attnlab.cli.main import build_parser

    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            parser.parse_args([name, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text and f"attnlab {name}" in text


def test_train_lm_then_generate(cli, text_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "lm"
    code, stdout, _ = cli("train", "lm", "--data", text_file, "--preset", "tiny", "--steps", "4", "--out", out,
                          "--no-progress")
    assert code == 0 and "validation loss" in stdout and "step 4, finished" in stdout
    for name in ("config.json", "model.safetensors", "tokenizer.json", "attnlab_task.json", "metrics.csv"):
        assert (out / name).is_file(), name
    code, stdout, _ = cli("generate", "--model", out, "--max-new-tokens", "40", "--seed", "3", "First")
    assert code == 0 and stdout.startswith("First") and len(stdout.rstrip("\n")) >= len("First") + 30
    again = cli("generate", "--model", out, "--max-new-tokens", "40", "--seed", "3", "First")[1]
    assert again == stdout  # seeded sampling is reproducible


def test_lm_folder_loads_in_hf_transformers(cli, text_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    from attnlab.tasks.common import load_model

    out = tmp_path / "lm"
    code = cli("train", "lm", "--data", text_file, "--preset", "tiny", "--steps", "2", "--out", out, "--no-progress")[0]
    assert code == 0
    ours, tok, _ = load_model(out)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tok.encode("You are all resolved")])
    assert hf_tok("You are all resolved")["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, rtol=1e-4, atol=1e-4)


def test_train_translate_then_translate_with_bleu(cli, pair_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, tgt = pair_files
    out = tmp_path / "tr"
    code, stdout, _ = cli("train", "translate", "--data", src, tgt, "--valid", src, tgt, "--preset", "tiny",
                          "--steps", "4", "--out", out, "--no-progress")
    assert code == 0 and "validation BLEU" in stdout
    code, stdout, _ = cli("translate", "--model", out, "--greedy", "a dog runs", "a red car")
    assert code == 0 and len(stdout.splitlines()) == 2
    hyp = tmp_path / "hyp.de"
    code, stdout, _ = cli("translate", "--model", out, "--input", src, "--ref", tgt, "--beams", "2", "--output", hyp)
    assert code == 0 and "sacreBLEU = " in stdout and "beam 2" in stdout
    assert len(hyp.read_text(encoding="utf-8").splitlines()) == len(src.read_text().splitlines())


def test_train_classify_then_classify_and_eval(cli, review_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "cl"
    code, stdout, _ = cli("train", "classify", "--data", review_file, "--valid", review_file, "--preset", "tiny",
                          "--steps", "4", "--labels", "negative,positive", "--out", out, "--no-progress")
    assert code == 0 and "validation accuracy" in stdout
    code, stdout, _ = cli("classify", "--model", out, "a delight", "a mess")
    lines = stdout.splitlines()
    assert code == 0 and len(lines) == 2
    label, prob, text = lines[0].split("\t")
    assert label in ("negative", "positive") and 0.5 <= float(prob) <= 1.0 and text == "a delight"
    code, stdout, _ = cli("classify", "--model", out, "--eval", review_file)
    assert code == 0 and stdout.startswith("accuracy = ")


def test_classifier_folder_works_in_hf_pipeline(cli, review_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    from attnlab.tasks.classification import predict
    from attnlab.tasks.common import load_model

    out = tmp_path / "cl"
    cli("train", "classify", "--data", review_file, "--preset", "tiny", "--steps", "3",
        "--labels", "negative,positive", "--out", out, "--no-progress")
    model, tok, _ = load_model(out)
    texts = ["a delight from start to finish", "boring, flat"]
    ours = predict(model, tok, texts)
    theirs = transformers.pipeline("sentiment-analysis", model=str(out), device=-1)(texts)
    assert [t["label"] for t in theirs] == [label for label, _ in ours]
    torch.testing.assert_close(torch.tensor([t["score"] for t in theirs]), torch.tensor([p for _, p in ours]))


def test_set_overrides_and_unknown_fields(cli, text_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "lm"
    code, _, _ = cli("train", "lm", "--data", text_file, "--preset", "tiny", "--steps", "2", "--out", out,
                     "--set", "n_layers=1", "dropout=0.1", "--no-progress")
    assert code == 0
    import json

    config = json.loads((out / "config.json").read_text())
    assert config["n_layer"] == 1 and config["resid_pdrop"] == 0.1
    code, _, err = cli("train", "lm", "--data", text_file, "--preset", "tiny", "--out", tmp_path / "x",
                       "--set", "depth=3")
    assert code == 2 and "depth" in err and "not a LMRecipe field" in err
    code, _, err = cli("train", "lm", "--data", text_file, "--preset", "huge", "--out", tmp_path / "y")
    assert code == 2 and "unknown preset 'huge'" in err


def test_rerun_resumes_and_fresh_folder_retrains_tokenizer(cli, text_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    out = tmp_path / "lm"
    base = ("train", "lm", "--data", text_file, "--preset", "tiny", "--out", out, "--no-progress")
    assert cli(*base, "--steps", "2")[0] == 0
    code, stdout, _ = cli(*base, "--steps", "4")  # same folder: continues from step 2 to 4
    assert code == 0 and "step 4, finished" in stdout
    code, _, err = cli(*base, "--steps", "6", "--tokenizer", "bpe", "--vocab-size", "300")
    assert code == 2 and "holds a 'char' tokenizer" in err  # resuming must keep the run's tokenizer
    shutil.rmtree(out / "checkpoints")  # no run to resume: a new tokenizer is trained
    code, _, _ = cli(*base, "--steps", "2", "--tokenizer", "bpe", "--vocab-size", "300")
    assert code == 0 and '"attnlab_kind": "bpe"' in (out / "tokenizer_config.json").read_text()
