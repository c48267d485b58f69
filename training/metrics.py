"""Per-step and per-epoch metrics as CSV and TensorBoard, written by rank 0 only.

On resume, CSV rows past the checkpoint's step are dropped (they belong to the
part of the interrupted run that is being redone) and TensorBoard purges them.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def step_fields(terms: tuple[str, ...]) -> list[str]:
    return ["step", "epoch", "lr", "loss", *terms, "images_per_s", "seconds"]


def epoch_fields(terms: tuple[str, ...], val: tuple[str, ...]) -> list[str]:
    return ["epoch", "step", "lr", "train_loss", *(f"train_{t}" for t in terms), *val,
            "seconds"]


class CsvLog:
    def __init__(self, path: Path, fields: list[str], keep_until_step: int | None) -> None:
        self.path = path
        self.fields = fields
        rows: list[dict[str, str]] = []
        if keep_until_step is not None and path.is_file():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= keep_until_step]
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields).writerow(
                {k: _fmt(row.get(k)) for k in self.fields})


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


class Metrics:
    """``metrics_step.csv``, ``metrics_epoch.csv`` and ``tensorboard/`` in the run directory."""

    def __init__(self, run_dir: Path, resume_step: int | None, enabled: bool,
                 terms: tuple[str, ...] = ("ls", "lt"),
                 val: tuple[str, ...] = ("val_loss", "val_ls", "val_lt", "val_teacher_ls"),
                 ) -> None:
        """``terms``: the method's loss terms besides the total; ``val``: its validation."""
        self.enabled = enabled
        self.terms = terms
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.steps = CsvLog(run_dir / "metrics_step.csv", step_fields(terms), resume_step)
        self.epochs = CsvLog(run_dir / "metrics_epoch.csv", epoch_fields(terms, val),
                             resume_step)
        purge = None if resume_step is None else resume_step + 1
        self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)

    def step(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.steps.write(row)
        for key in ("loss", *self.terms, "lr", "images_per_s"):
            self.tb.add_scalar(f"train/{key}", row[key], row["step"])

    def epoch(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.epochs.write(row)
        for key, value in row.items():
            if isinstance(value, float) and key not in ("seconds",):
                self.tb.add_scalar(f"epoch/{key}", value, row["step"])
        self.tb.flush()

    def close(self) -> None:
        if self.enabled:
            self.tb.close()
