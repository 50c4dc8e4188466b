"""The experiment harness measures what it claims to (fast checks; the runs themselves are scripts)."""

import importlib.util
import math
import sys
from pathlib import Path

import torch

from attnlab.cli.main import main as cli

ROOT = Path(__file__).resolve().parents[3] / "experiments"


def load(name: str):
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(f"exp_{name}", ROOT / name / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scaling_saturation_measurement_follows_theory():
    mod = load("scaling")
    a = mod.part_a([4, 64, 1024])
    # scaled scores keep unit variance: entropy stays near log(T) - 0.5 and the Jacobian stays put
    assert max(a["entropy_scaled"]) - min(a["entropy_scaled"]) < 0.1
    assert a["entropy_scaled"][0] > math.log(64) - 0.6
    # unscaled: the softmax saturates, and the gradient through it vanishes
    assert a["entropy_unscaled"] == sorted(a["entropy_unscaled"], reverse=True)
    assert a["entropy_unscaled"][-1] < 0.3 and a["grad_unscaled"][-1] < 0.5 * a["grad_scaled"][-1]


def test_word_order_labels_and_pooled_model_blindness():
    mod = load("positions")
    x, y = mod.word_order_batch(16, 8, torch.Generator().manual_seed(0))
    for row, label in zip(x, y):
        assert label == int(row.tolist().index(mod.DOG) < row.tolist().index(mod.MAN))
    model = mod.PooledClassifier("none").eval()
    perm = torch.randperm(8)
    torch.testing.assert_close(model(x), model(x[:, perm]))  # no positions: order cannot matter
    assert not torch.allclose(mod.PooledClassifier("sinusoidal").eval()(x), mod.PooledClassifier("sinusoidal").eval()(x[:, perm]))


def test_copy_and_two_relation_targets():
    pos = load("positions")
    x, y = pos.copy_batch(2, 5, torch.Generator().manual_seed(0))
    assert x.shape == (2, 12) and (y[:, 6:-1] == x[:, 7:]).all() and (y[:, :6] == -100).all()
    heads = load("heads")
    x, y = heads.batch(3, torch.Generator().manual_seed(0))
    t = 10
    assert (y[:, t] == x[:, t - 1] * heads.SYMBOLS + x[:, t - 3]).all()


def test_experiment_cli_lists_every_folder(capsys):
    assert cli(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("scaling", "positions", "heads", "norms", "complexity", "parallelism"):
        assert name in out
