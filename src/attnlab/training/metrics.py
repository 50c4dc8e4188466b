"""Metric sinks: a CSV file and TensorBoard event files, written by the main process only.

Dimension key: none (scalars only).

``metrics.csv`` is in long format, one value per row: ``step,split,name,value`` (split is "train" or
"eval"), which stays valid when the set of metrics changes; pivot it for plotting. On resume, rows of
steps after the resumed checkpoint (written by the interrupted run) are dropped, and TensorBoard is
told to purge events past that step, so both logs read like one uninterrupted run.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path
from typing import Any

CSV_FIELDS = ("step", "split", "name", "value")


def _truncate_csv(path: Path, last_step: int) -> None:
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


class MetricsWriter:
    """``write(step, split, {name: value})`` to ``out_dir/metrics.csv`` and ``out_dir/tensorboard/``."""

    def __init__(
        self, out_dir: str | Path, *, resume_step: int = 0, tensorboard: bool = True, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self._tb: Any = None
        if not enabled:
            return
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.csv_path = out / "metrics.csv"
        if self.csv_path.exists() and resume_step > 0:
            _truncate_csv(self.csv_path, resume_step)
        elif self.csv_path.exists():
            self.csv_path.unlink()
        new = not self.csv_path.exists()
        self._file = self.csv_path.open("a", newline="")
        self._csv = csv.DictWriter(self._file, CSV_FIELDS)
        if new:
            self._csv.writeheader()
        if tensorboard:
            self._tb = self._open_tensorboard(out / "tensorboard", resume_step)

    @staticmethod
    def _open_tensorboard(log_dir: Path, resume_step: int) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional dependency (pip install tensorboard)
            warnings.warn("tensorboard is not installed; metrics go to metrics.csv only (pip install tensorboard)")
            return None
        return SummaryWriter(str(log_dir), purge_step=resume_step + 1 if resume_step > 0 else None)

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            value = float(value)
            self._csv.writerow({"step": step, "split": split, "name": name, "value": repr(value)})
            if self._tb is not None and math.isfinite(value):
                self._tb.add_scalar(f"{split}/{name}", value, step)
        self._file.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()
