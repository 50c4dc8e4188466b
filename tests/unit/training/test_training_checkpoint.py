"""Atomic checkpoints: round trip, newest-complete lookup, pruning, damaged files, and failing saves.

Dimension key: none (small tensors of any shape).
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlab.interop.errors import CheckpointError
from attnlab.training import CheckpointDir, CheckpointSaveError, read_checkpoint
from attnlab.training import checkpoint as ck


def _save(d: CheckpointDir, step: int, value: float = 1.0) -> Path:
    model = {"w": torch.full((3, 2), value), "b": torch.arange(4, dtype=torch.bfloat16), "s": torch.tensor(2.5)}
    optim = {"w/exp_avg": torch.ones(3, 2) * value, "w/step": torch.tensor(float(step))}
    state = {"aliases": {"w_tied": "w"}, "optimizer": {"param_groups": [{"params": ["w"], "lr": 0.1,
                                                                        "betas": [0.9, 0.95]}], "scalars": {}}}
    return d.save(step, model=model, optimizer=optim, state=state, rng=ck.capture_rng())


def test_round_trip_and_layout(tmp_path: Path) -> None:
    d = CheckpointDir(tmp_path / "ckpts")
    path = _save(d, 3, value=2.0)
    assert path.name == "step-00000003"
    assert sorted(p.name for p in path.iterdir()) == [
        "COMPLETE", "model.safetensors", "optimizer.safetensors", "rng-rank00000.safetensors", "state.json"]
    loaded = read_checkpoint(path)
    assert torch.equal(loaded.model["w"], torch.full((3, 2), 2.0)) and loaded.model["w_tied"] is loaded.model["w"]
    assert loaded.model["b"].dtype == torch.bfloat16 and loaded.model["s"].shape == ()
    assert loaded.optimizer["state"]["w"]["step"].item() == 3.0
    assert loaded.optimizer["param_groups"][0]["betas"] == (0.9, 0.95)
    from safetensors.torch import load_file  # the files are plain safetensors

    assert torch.equal(load_file(path / "model.safetensors")["w"], loaded.model["w"])


def test_rng_round_trip() -> None:
    tensors, meta = ck.capture_rng()
    expected = (torch.rand(3), random.random(), np.random.rand(2))
    ck.restore_rng(tensors, meta)
    got = (torch.rand(3), random.random(), np.random.rand(2))
    assert torch.equal(expected[0], got[0]) and expected[1] == got[1] and np.array_equal(expected[2], got[2])
    assert tensors["torch_cpu"].dtype == torch.uint8 and tensors["numpy_keys"].dtype == torch.uint8


def test_keep_last_and_newest_complete(tmp_path: Path) -> None:
    d = CheckpointDir(tmp_path, keep_last=2)
    for step in (2, 4, 6):
        _save(d, step, value=step)
    assert [s for s, _ in d.complete()] == [6, 4]
    (tmp_path / ".tmp-step-00000008").mkdir()  # an interrupted save: ignored
    (tmp_path / "step-00000010").mkdir()  # no marker: ignored
    assert d.load_latest().path.name == "step-00000006"
    with pytest.raises(ValueError, match="keep_last"):
        CheckpointDir(tmp_path, keep_last=1)


def test_damaged_newest_falls_back(tmp_path: Path) -> None:
    d = CheckpointDir(tmp_path)
    _save(d, 1)
    newest = _save(d, 2)
    raw = bytearray((newest / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF  # flip one byte of tensor data
    (newest / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged"):
        read_checkpoint(newest)
    with pytest.warns(UserWarning, match="skipping damaged"):
        assert d.load_latest().path.name == "step-00000001"
    with pytest.raises(CheckpointError, match="incomplete"):
        read_checkpoint(tmp_path / "nowhere")


def _assert_failed_cleanly(root: Path, kept: Path) -> None:
    assert [p.name for p in root.iterdir()] == [kept.name]  # no new checkpoint and no temp directory
    read_checkpoint(kept)  # the old one still verifies


def test_full_disk_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = CheckpointDir(tmp_path)
    kept = _save(d, 1)
    written = []

    def enospc(fd: int, data) -> None:
        if written:  # the first chunk goes through, the next finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(memoryview(data)))
        os.write(fd, data)

    monkeypatch.setattr(ck, "_write_all", enospc)
    with pytest.raises(CheckpointSaveError, match="No space left") as info:
        _save(d, 2)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    _assert_failed_cleanly(tmp_path, kept)


def test_read_only_directory_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = CheckpointDir(tmp_path)
    kept = _save(d, 1)
    tmp_path.chmod(0o555)
    try:
        if os.geteuid() == 0 or os.access(tmp_path, os.W_OK):  # root ignores the mode bits: simulate EACCES
            real_mkdir = Path.mkdir

            def denied(self: Path, *args, **kwargs) -> None:
                if self.parent == tmp_path:
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
                real_mkdir(self, *args, **kwargs)

            monkeypatch.setattr(Path, "mkdir", denied)
        with pytest.raises(CheckpointSaveError, match="Permission denied"):
            _save(d, 2)
    finally:
        tmp_path.chmod(0o755)
    _assert_failed_cleanly(tmp_path, kept)


def test_parent_is_a_file_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    with pytest.raises(CheckpointSaveError, match="could not write checkpoint"):
        _save(CheckpointDir(blocker / "ckpts"), 1)


def test_rename_failure_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = CheckpointDir(tmp_path)
    kept = _save(d, 1)

    def refuse(src, dst) -> None:
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(ck.os, "replace", refuse)
    with pytest.raises(CheckpointSaveError, match="Read-only"):
        _save(d, 2)
    monkeypatch.undo()
    _assert_failed_cleanly(tmp_path, kept)


def test_flatten_optimizer_round_trip() -> None:
    osd = {"state": {"a.w": {"step": torch.tensor(3.0), "exp_avg": torch.ones(2), "note": 5}},
           "param_groups": [{"params": ["a.w"], "lr": 0.1, "betas": (0.9, 0.99)}]}
    tensors, js = ck.flatten_optimizer(osd)
    assert sorted(tensors) == ["a.w/exp_avg", "a.w/step"] and js["scalars"] == {"a.w": {"note": 5}}
    back = ck.unflatten_optimizer(tensors, js)
    assert back["state"]["a.w"]["note"] == 5 and back["param_groups"][0]["betas"] == (0.9, 0.99)


def test_malformed_manifest_is_a_checkpoint_error(tmp_path: Path) -> None:
    d = CheckpointDir(tmp_path)
    _save(d, 1)
    bad = _save(d, 2)
    (bad / "COMPLETE").write_text("{not json")
    with pytest.raises(CheckpointError, match="malformed"):
        read_checkpoint(bad)
    with pytest.warns(UserWarning, match="skipping damaged"):
        assert d.load_latest().path.name == "step-00000001"
