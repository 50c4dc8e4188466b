"""Helpers shared by the quality benchmarks: where the real data lives, and how results are printed.

Dimension key: none.

Data is read from ``$ATTNLAB_DATA`` or ``../shared/data`` relative to the repository root; a benchmark
exits with a message (status 0) when it is absent, as on a user's machine without the shared folder.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The shared data folder, or exit cleanly when it is missing."""
    root = Path(os.environ.get("ATTNLAB_DATA") or REPO_ROOT.parent / "shared" / "data")
    if not root.is_dir():
        print(f"skipped: real data not found at {root}; set ATTNLAB_DATA to the folder holding "
              "tinyshakespeare.txt, multi30k/ and sst2/")
        sys.exit(0)
    return root


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    cores, threads = os.cpu_count(), torch.get_num_threads()
    return f"{cores}-core CPU ({platform.machine()}), {threads} torch threads, torch {torch.__version__}"


def report(name: str, result: dict[str, Any], out: str | None) -> None:
    """Print ``result`` as one JSON line (and write it to ``out`` when given)."""
    payload = {"benchmark": name, "date": datetime.date.today().isoformat(), "machine": machine(),
               "command": " ".join(["python", *sys.argv]), **result}
    text = json.dumps(payload, indent=2, default=str)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
