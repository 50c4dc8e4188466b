"""Glue shared by the three tasks: devices, model folders (save/load with tokenizer), fixed eval batches.

Dimension key: B batch, T length.

A trained model lives in one folder::

    model/
      config.json           HF config (GPT-2, BERT ...) or, for models HF has no class for (the Vaswani
                            Transformer, GPTs with rotary positions ...), attnlab's own config with
                            "attnlab_native": true (see attnlab.interop.native)
      model.safetensors     the weights (never pickle)
      tokenizer.json        + tokenizer_config.json: the tokenizer (HF-readable)
      attnlab_task.json     what the folder is for: task, classes, training recipe, final metrics

Families with an HF adapter are written with :func:`attnlab.save_pretrained`, so HF ``transformers``
(and its ``pipeline``) loads them; the rest use the same safetensors writer with attnlab's config.
:func:`load_model` reads both through :func:`attnlab.from_pretrained`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from attnlab.data import Tokenizer
from attnlab.data.io import PathLike
from attnlab.interop.errors import CheckpointError

TASK_FILE = "attnlab_task.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
R = TypeVar("R", bound="Recipe")


@dataclasses.dataclass
class Recipe:
    """Base of the task recipes (model shape + training hyper-parameters): a checked ``replace``."""

    def replace(self: R, **changes: Any) -> R:
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} fields {unknown}; known: {names}")
        return dataclasses.replace(self, **changes)


def resolve_device(device: str | torch.device = "auto", *, cpu_hint: str = "--device cpu") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; otherwise ``torch.device(device)``, checked.

    ``cpu_hint`` is how the error tells the caller to ask for the CPU (a CLI flag, or a Python argument).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use {cpu_hint}")
    return dev


def save_model(
    model: nn.Module, folder: PathLike, *, tokenizer: Tokenizer | None = None, info: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (+ tokenizer, + task info) into ``folder``; see the module docstring for the layout."""
    from attnlab.interop.api import save_pretrained
    from attnlab.interop.native import save_native

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    try:
        save_pretrained(model, out)
    except CheckpointError:  # no HF equivalent: attnlab's own config next to the same safetensors layout
        save_native(model, out)
    if tokenizer is not None:
        tokenizer.save(out)
    if info is not None:
        _write_json(out / TASK_FILE, info)
    return out


def load_model(folder: PathLike, *, device: torch.device | str = "cpu") -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """(model in eval mode, tokenizer, task info) from a folder written by :func:`save_model`."""
    from attnlab.interop.api import from_pretrained

    src = Path(folder)
    if not (src / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{src}: no {CONFIG_FILE}; point --model at a folder written by `attnlab train`")
    model = from_pretrained(src)  # HF-format or attnlab-format folder
    info = json.loads((src / TASK_FILE).read_text()) if (src / TASK_FILE).is_file() else {}
    return model.to(device), Tokenizer.load(src), info


def _write_json(path: Path, obj: Any) -> None:
    from attnlab.interop.safetensors_io import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def resuming(out_dir: PathLike) -> bool:
    """True when ``out_dir`` holds training checkpoints: the run continues, with the tokenizer it saved."""
    return any((Path(out_dir) / "checkpoints").glob("step-*"))


def read_task_info(folder: PathLike) -> dict[str, Any]:
    path = Path(folder) / TASK_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def fixed_batches(
    dataset: Any, n_batches: int, batch_size: int, collate: Callable[[list[Any]], Any], *, seed: int = 1234,
) -> list[Any]:
    """``n_batches`` batches of items drawn uniformly with replacement, the same every call (nanoGPT's eval)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(dataset), (n_batches, batch_size), generator=g).tolist()
    return [collate([dataset[i] for i in row]) for row in idx]


class TimeBudget:
    """A trainer callback that stops training once ``seconds`` have passed (raises :class:`TimeUp`)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, trainer: Any, record: dict[str, float]) -> None:
        if self.seconds is not None and self.elapsed > self.seconds:
            raise TimeUp(trainer.step)


class TimeUp(Exception):
    """Raised by :class:`TimeBudget` to end ``Trainer.fit`` early; the caller saves a checkpoint."""

    def __init__(self, step: int) -> None:
        super().__init__(f"time budget reached at step {step}")
        self.step = step


def fit_within(trainer: Any, budget: TimeBudget) -> tuple[bool, dict[str, float] | None]:
    """``trainer.fit()`` under ``budget`` -> (finished, the final evaluation or None).

    When time runs out a checkpoint is saved, ``finished`` is False and there is no final evaluation.
    """
    if budget not in trainer.callbacks:
        trainer.callbacks.append(budget)
    try:
        result = trainer.fit()
        return True, result.eval
    except TimeUp:
        trainer.save_checkpoint()
        return False, None


def lines_or_text(values: Sequence[str] | None, file: PathLike | None) -> list[str]:
    """Inputs for a CLI command: the given strings, or the lines of ``file`` ("-" reads stdin)."""
    import sys

    from attnlab.data.io import read_lines

    if values:
        return list(values)
    if file is None:
        raise ValueError("give the input text as arguments or with --input FILE (use '-' for stdin)")
    if str(file) == "-":
        return [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
    return read_lines(file)


BUNDLED_TEXTS = {"tinyshakespeare": "tinyshakespeare.txt", "shakespeare": "tinyshakespeare.txt"}


def bundled_text(name: str = "tinyshakespeare") -> Path:
    """Path of a text bundled in the package (tiny Shakespeare: public-domain, 1,115,394 characters)."""
    from importlib import resources

    if name not in BUNDLED_TEXTS:
        raise ValueError(f"no bundled text {name!r}; bundled: {sorted(BUNDLED_TEXTS)}")
    path = Path(str(resources.files("attnlab").joinpath("assets", BUNDLED_TEXTS[name])))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bundled text is missing from this installation; reinstall attnlab")
    return path


def data_path(value: PathLike) -> Path:
    """A user's ``--data`` value: a file path, or the name of a bundled text ("tinyshakespeare")."""
    if str(value) in BUNDLED_TEXTS and not Path(value).exists():
        return bundled_text(str(value))
    return Path(value)
