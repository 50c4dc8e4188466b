"""torchrun with 2 CPU processes (gloo), DDP and FSDP2, follows the same loss curve as 1 process.

Dimension key: B global batch, W world size.

One torchrun launch runs this file as a script on 2 processes: a DDP run, then an FSDP run, each on
the same global batch (every process gets B / W rows) with gradient accumulation, and rank 0 writes
the per-step losses and gradient norms. The pytest process then trains the same model on 1 process
and compares with ``assert_close``. Each strategy then resumes its step-2 checkpoint (saved in the full,
unsharded layout) on 2 processes, and must repeat steps 3-4 exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

STEPS = 4


def _train(out_dir: Path, strategy: str, resume: str = "never") -> list[dict[str, float]]:
    from attnlab.models.config import from_name
    from attnlab.models.gpt import GPT
    from attnlab.training import (
        LanguageModelingTask,
        ResumableLoader,
        Trainer,
        seed_everything,
    )

    seed_everything(int(os.environ.get("RANK", "0")))  # ranks init differently: rank 0's weights must win
    model = GPT(from_name("gpt-tiny"))  # dropout 0: the processes' RNG streams differ
    g = torch.Generator().manual_seed(1)
    starts = torch.randint(0, 128, (64, 1), generator=g)
    data = [{"ids": (s + torch.arange(16)) % 128} for s in starts]  # learnable: next token = this + 1
    trainer = Trainer(
        model, LanguageModelingTask(), ResumableLoader(data, batch_size=8, seed=5), out_dir=str(out_dir),
        max_steps=STEPS, lr=1e-2, warmup_steps=1, grad_accum=2, grad_clip=0.5, log_every=1, distributed=strategy,
        save_every=2, progress=False, tensorboard=False, resume=resume,
    )
    if strategy == "fsdp":  # really sharded: parameters are DTensors holding half of each row block
        assert all(isinstance(p, torch.distributed.tensor.DTensor) for p in model.parameters())
    if strategy == "ddp":
        assert isinstance(trainer._module, torch.nn.parallel.DistributedDataParallel)
    trainer.fit()
    return [{k: h[k] for k in ("step", "loss", "grad_norm", "accuracy")} for h in trainer.history]


def _worker(out_dir: Path) -> None:
    torch.set_num_threads(1)
    results = {s: _train(out_dir / s, s) for s in ("ddp", "fsdp")}
    for s in ("ddp", "fsdp"):  # resume each run's step-2 checkpoint (full layout -> sharded for FSDP)
        results[f"{s}-resumed"] = _train(out_dir / f"{s}-resumed", s, str(out_dir / s / "checkpoints" / "step-00000002"))
    if int(os.environ["RANK"]) == 0:
        (out_dir / "curves.json").write_text(json.dumps(results))


@pytest.fixture(scope="module")
def two_process_curves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict]]]:
    out = tmp_path_factory.mktemp("torchrun")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise AssertionError(f"torchrun failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return out, json.loads((out / "curves.json").read_text())


@pytest.fixture(scope="module")
def one_process_curve(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the torchrun workers (OMP_NUM_THREADS=1)
    try:
        return _train(tmp_path_factory.mktemp("single"), "none")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(two_process_curves, one_process_curve, strategy: str) -> None:
    curve = two_process_curves[1][strategy]
    assert [r["step"] for r in curve] == list(range(1, STEPS + 1))
    for key in ("loss", "grad_norm", "accuracy"):
        torch.testing.assert_close(
            torch.tensor([r[key] for r in curve]), torch.tensor([r[key] for r in one_process_curve]), msg=key
        )
    assert curve[-1]["loss"] < curve[0]["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_multi_process_checkpoint_is_full_and_resumes(two_process_curves, strategy: str) -> None:
    from attnlab.training import read_checkpoint

    out, curves = two_process_curves
    ckpt = read_checkpoint(out / strategy / "checkpoints" / f"step-{STEPS:08d}")
    assert ckpt.state["run"]["world_size"] == 2 and ckpt.state["step"] == STEPS
    assert sorted(p.name for p in ckpt.path.glob("rng-rank*")) == ["rng-rank00000.safetensors", "rng-rank00001.safetensors"]
    from attnlab.models.config import from_name
    from attnlab.models.gpt import GPT

    full = GPT(from_name("gpt-tiny")).state_dict()  # unsharded names and shapes
    assert {k: tuple(v.shape) for k, v in ckpt.model.items()} == {k: tuple(v.shape) for k, v in full.items()}
    resumed = curves[f"{strategy}-resumed"]
    assert [r["step"] for r in resumed] == [3, 4]  # continued from step 2, in 2 processes
    assert resumed == curves[strategy][2:]  # exactly the steps of the uninterrupted run


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
