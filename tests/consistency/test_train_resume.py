"""Exact resume: 2S steps straight == S steps, SIGKILL (also inside a save), resume for S more — bit for bit.

Dimension key: B batch, T length.

Each run is a fresh Python process (this file run as a script), so nothing survives a kill but the files
on disk. The setting has dropout, warmup, gradient accumulation and a data epoch that ends mid-step. With
S = 4 the run is killed inside the save of step 4 (data files written, no manifest), after step 5 (the
checkpoint of step S is mid-epoch), inside the save of step 6 (manifest written, not renamed) and right
after the final save (renamed, not pruned); each time a new process resumes from the newest complete
checkpoint. Per-step losses are compared as exact float reprs (from metrics.csv, and from a callback in
every process, so a step recomputed after a resume must repeat its first value); final parameters and
optimizer tensors with ``torch.equal``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TOTAL_STEPS = 8  # 2S
SAVE_EVERY = 2


def _worker(out_dir: str, kill_at: int) -> None:
    """Train TOTAL_STEPS (resuming from out_dir when possible); SIGKILL self after step ``kill_at``."""
    torch.set_num_threads(1)
    from attnlab.models.config import from_name
    from attnlab.models.gpt import GPT
    from attnlab.training import (
        LanguageModelingTask,
        ResumableLoader,
        Trainer,
        seed_everything,
    )

    seed_everything(1234)
    model = GPT(from_name("gpt-tiny", dropout=0.1))
    g = torch.Generator().manual_seed(7)
    data = [{"ids": torch.randint(0, 128, (16,), generator=g)} for _ in range(30)]  # 7 batches of 4 an epoch
    log = Path(out_dir) / "losses.jsonl"

    def record(trainer: Trainer, rec: dict[str, float]) -> None:
        with log.open("a") as f:
            f.write(json.dumps({"step": trainer.step, "loss": repr(rec["loss"])}) + "\n")
        if trainer.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer = Trainer(
        model, LanguageModelingTask(), ResumableLoader(data, batch_size=4, seed=3), out_dir=out_dir,
        max_steps=TOTAL_STEPS, lr=3e-3, schedule="cosine", warmup_steps=3, grad_accum=2, save_every=SAVE_EVERY,
        log_every=1, progress=False, tensorboard=False, callbacks=[record],
    )
    trainer.fit()


def _run(out_dir: Path, kill_at: int = -1, fault: str | None = None) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("ATTNLAB_CKPT_FAULT", None)
    if fault:
        env["ATTNLAB_CKPT_FAULT"] = fault
    cmd = [sys.executable, __file__, str(out_dir), str(kill_at)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode


def _losses(out_dir: Path) -> dict[int, str]:
    """step -> loss repr, from metrics.csv (rows past the resumed checkpoint are dropped on resume)."""
    with (out_dir / "metrics.csv").open(newline="") as f:
        rows = [(int(r["step"]), r["value"]) for r in csv.DictReader(f) if r["name"] == "loss"]
    assert len(rows) == len({s for s, _ in rows}), "a step is logged twice in metrics.csv"
    return dict(rows)


def _callback_losses(out_dir: Path) -> dict[int, str]:
    """step -> loss as seen by every process; a step run twice (before a kill, after the resume) must agree."""
    out: dict[int, str] = {}
    for line in (out_dir / "losses.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert out.setdefault(row["step"], row["loss"]) == row["loss"], f"step {row['step']} differs on rerun"
    return out


def _final_tensors(out_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    ckpt = out_dir / "checkpoints" / f"step-{TOTAL_STEPS:08d}"
    model = load_file(ckpt / "model.safetensors")
    optim = {f"optim/{k}": v for k, v in load_file(ckpt / "optimizer.safetensors").items()}
    return {**model, **optim}


def _assert_identical(run: Path, reference: Path) -> None:
    assert _losses(run) == _losses(reference)
    reference_losses = _callback_losses(reference)
    assert all(reference_losses[s] == loss for s, loss in _callback_losses(run).items())
    ref, got = _final_tensors(reference), _final_tensors(run)
    assert ref.keys() == got.keys()
    for name in ref:
        assert torch.equal(ref[name], got[name]), f"{name} differs after resume"
    state = json.loads((run / "checkpoints" / f"step-{TOTAL_STEPS:08d}" / "state.json").read_text())
    ref_state = json.loads((reference / "checkpoints" / f"step-{TOTAL_STEPS:08d}" / "state.json").read_text())
    assert state["data"] == ref_state["data"] and state["tokens_seen"] == ref_state["tokens_seen"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    assert _run(out) == 0
    assert sorted(_losses(out)) == list(range(1, TOTAL_STEPS + 1))
    assert _callback_losses(out) == _losses(out)
    return out


def _complete(out_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in (out_dir / "checkpoints").glob("step-*/COMPLETE"))


@pytest.mark.slow
def test_sigkilled_runs_resume_bit_identically(straight: Path, tmp_path: Path) -> None:
    """One run killed four times — inside saves and between them — ends exactly like the straight run."""
    ckpts = tmp_path / "checkpoints"
    # 1. killed inside the save of step 4, after the data files, before the manifest
    assert _run(tmp_path, fault="4:files") == -signal.SIGKILL
    assert _complete(tmp_path) == ["step-00000002"] and (ckpts / ".tmp-step-00000004").is_dir()
    # 2. resumes from step 2 (ignoring the half-written step 4); killed after step 5, between saves
    assert _run(tmp_path, kill_at=5) == -signal.SIGKILL
    assert _complete(tmp_path) == ["step-00000002", "step-00000004"] and max(_callback_losses(tmp_path)) == 5
    assert not (ckpts / ".tmp-step-00000004").exists()
    state = json.loads((ckpts / "step-00000004" / "state.json").read_text())
    assert state["data"]["index"] > 0, "the cut should fall mid-epoch"
    # 3. resumes from step 4; killed after writing the manifest of step 6, before renaming it into place
    assert _run(tmp_path, fault="6:marker") == -signal.SIGKILL
    assert _complete(tmp_path) == ["step-00000002", "step-00000004"]
    assert (ckpts / ".tmp-step-00000006" / "COMPLETE").is_file()  # complete but never renamed: not used
    # 4. resumes from step 4 again; killed after the final checkpoint is renamed, before old ones are pruned
    assert _run(tmp_path, fault="8:rename") == -signal.SIGKILL
    assert _complete(tmp_path) == ["step-00000004", "step-00000006", "step-00000008"]
    _assert_identical(tmp_path, straight)


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]))
