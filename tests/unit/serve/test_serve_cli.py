"""`attnlab serve`: the command's help, its errors, and a real server process answering on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")


def test_help_shows_examples_and_the_loopback_default(capsys: pytest.CaptureFixture[str]) -> None:
    from attnlab.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "attnlab serve --model" in text and "127.0.0.1" in text
    args = build_parser().parse_args(["serve", "--model", "x"])
    assert (args.host, args.port, args.max_concurrency) == ("127.0.0.1", 8000, 4)


def test_missing_folder_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from attnlab.cli.main import main

    assert main(["serve", "--model", str(tmp_path / "nope"), "--task", "fill-mask"]) == 2
    err = capsys.readouterr().err
    assert "is not a local folder" in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_command_answers_on_loopback(tmp_path: Path) -> None:
    import torch

    from attnlab.data import Tokenizer
    from attnlab.models import from_name
    from attnlab.models.bert import BertForSequenceClassification

    tok = Tokenizer.train("wordpiece", texts=["a good film", "a bad film", "great fun", "boring"] * 5,
                          vocab_size=60, min_frequency=1)
    torch.manual_seed(0)
    config = from_name("bert-tiny", vocab_size=tok.vocab_size, id2label={0: "neg", 1: "pos"})
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save(tmp_path)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "attnlab", "serve", "--model", str(tmp_path), "--port", str(port),
                             "--device", "cpu", "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.2)
        assert health["task"] == "text-classification" and health["model"] == tmp_path.name
        r = httpx.post(f"http://127.0.0.1:{port}/v1/pipeline", json={"inputs": ["a good film"]}, timeout=30)
        assert r.status_code == 200 and r.json()[0]["label"] in ("neg", "pos")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
