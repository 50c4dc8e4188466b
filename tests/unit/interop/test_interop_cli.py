"""``attnlab convert``: pickle -> safetensors with tokenizer files copied, dtype casts, clear errors."""

import torch

import attnlab
from attnlab.cli.main import main
from attnlab.interop import read_safetensors
from attnlab.models import BertModel, from_name


def test_convert_pickle_checkpoint_to_safetensors(tmp_path, capsys):
    torch.manual_seed(0)
    model = BertModel(from_name("bert-tiny")).eval()
    model.save_pretrained(tmp_path / "src")
    state = read_safetensors(tmp_path / "src" / "model.safetensors")
    (tmp_path / "src" / "model.safetensors").unlink()
    torch.save(state, tmp_path / "src" / "pytorch_model.bin")
    (tmp_path / "src" / "tokenizer.json").write_text("{}")
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "dst")]) == 2  # refused without the flag
    assert "pickle" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--allow-pickle", "--dtype", "float16"]) == 0
    assert "copied tokenizer.json" in capsys.readouterr().out
    assert read_safetensors(tmp_path / "dst" / "model.safetensors")["embeddings.LayerNorm.weight"].dtype == torch.float16
    again = attnlab.from_pretrained(tmp_path / "dst", dtype="auto")
    assert again.embeddings.word.weight.dtype == torch.float16
    assert attnlab.from_pretrained(tmp_path / "dst").embeddings.word.weight.dtype == torch.float32
    assert torch.equal(again.embeddings.word.weight, model.embeddings.word.weight.half())
    assert (tmp_path / "dst" / "tokenizer.json").read_text() == "{}"


def test_convert_refuses_same_folder(tmp_path, capsys):
    BertModel(from_name("bert-tiny")).save_pretrained(tmp_path)
    assert main(["convert", str(tmp_path), str(tmp_path)]) == 2
    assert "same folder" in capsys.readouterr().err
