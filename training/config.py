"""Every training parameter, with the paper's values (Li et al. 2021, §III) as defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

PRECISIONS = ("bf16", "fp16", "fp32")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    store: Path
    out: Path
    labels: str | None = None
    arch: str = "resnet50"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.9
    teacher_interval: int = 3000
    alpha: float = 0.95
    gamma1: float = 1.0
    gamma2: float = 1.0
    init: Path | None = None
    precision: str = "bf16"
    workers: int = 4
    resume: bool = False
    max_steps: int | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    val_fraction: float = 0.1
    log_every: int = 20
    norm: str = "store"
    epoch_size: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.batch_size >= 1, "batch size must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.teacher_interval >= 1, "teacher interval must be >= 1"),
            (0.0 <= self.alpha <= 1.0, "alpha must lie in [0, 1]"),
            (0.0 <= self.val_fraction < 1.0, "val fraction must lie in [0, 1)"),
            (self.checkpoint_every >= 1, "checkpoint-every must be >= 1"),
            (self.log_every >= 1, "log-every must be >= 1"),
            (self.norm in ("store", "imagenet"), "norm must be 'store' or 'imagenet'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v
                for k, v in dataclasses.asdict(self).items()}
