"""Every training parameter; ``None`` means the chosen method's published default.

GeoKR's defaults are the paper's (Li et al. 2021, §III).  The self-supervised
baselines take theirs from their own papers (see :mod:`training.methods`); the
defaults are filled in here, so ``to_dict()`` (the model card's record) always
holds the numbers the run actually used.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

PRECISIONS = ("bf16", "fp16", "fp32")
METHODS = ("geokr", "classification", "simclr", "mocov2", "byol")
OPTIMIZERS = ("adam", "sgd", "lars")
SCHEDULES = ("exp", "cosine")
LR_SCALINGS = ("none", "linear")

# Per-method defaults for the fields left at None.  Sources: GeoKR, Li et al. 2021 §III;
# SimCLR, Chen et al. 2020 (arXiv 2002.05709) §B.1, B.9; MoCo v2, Chen, Fan, Girshick & He
# 2020 (arXiv 2003.04297) with MoCo, He et al. 2020; BYOL, Grill et al. 2020 (arXiv
# 2006.07733) §3.3, App. B, C.
_SUPERVISED = {"optimizer": "adam", "lr": 1e-3, "lr_scaling": "none", "weight_decay": 0.0,
               "schedule": "exp", "warmup_epochs": 0.0}
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "geokr": _SUPERVISED,
    "classification": _SUPERVISED,
    "simclr": {"optimizer": "lars", "lr": 0.3, "lr_scaling": "linear", "weight_decay": 1e-6,
               "schedule": "cosine", "warmup_epochs": 10.0, "temperature": 0.1,
               "proj_hidden": 0, "proj_dim": 128, "crop_scale": 0.08,
               "jitter": "0.8,0.8,0.8,0.2", "blur_p": "0.5,0.5", "solarize_p": "0,0"},
    "mocov2": {"optimizer": "sgd", "lr": 0.03, "lr_scaling": "linear", "weight_decay": 1e-4,
               "schedule": "cosine", "warmup_epochs": 0.0, "temperature": 0.2,
               "proj_hidden": 2048, "proj_dim": 128, "ema": 0.999, "crop_scale": 0.2,
               "jitter": "0.4,0.4,0.4,0.1", "blur_p": "0.5,0.5", "solarize_p": "0,0"},
    "byol": {"optimizer": "lars", "lr": 0.2, "lr_scaling": "linear", "weight_decay": 1.5e-6,
             "schedule": "cosine", "warmup_epochs": 10.0, "proj_hidden": 4096,
             "proj_dim": 256, "pred_hidden": 4096, "ema": 0.996, "ema_end": 1.0,
             "crop_scale": 0.08, "jitter": "0.4,0.4,0.2,0.1", "blur_p": "1.0,0.1",
             "solarize_p": "0,0.2"},
}


def floats(text: str, n: int, name: str) -> tuple[float, ...]:
    """``"a,b"`` -> (a, b): comma-separated numbers, each finite."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name} must be {n} comma-separated numbers, got {text!r}") from None
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be {n} comma-separated finite numbers, got {text!r}")
    return values


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    store: Path
    out: Path
    method: str = "geokr"
    labels: str | None = None
    arch: str = "resnet50"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str | None = None
    lr: float | None = None
    lr_scaling: str | None = None
    lr_decay: float = 0.9
    weight_decay: float | None = None
    momentum: float = 0.9
    schedule: str | None = None
    warmup_epochs: float | None = None
    teacher_interval: int = 3000
    alpha: float = 0.95
    gamma1: float = 1.0
    gamma2: float = 1.0
    temperature: float | None = None
    proj_hidden: int | None = None
    proj_dim: int | None = None
    pred_hidden: int | None = None
    queue_size: int = 65536
    ema: float | None = None
    ema_end: float | None = None
    crop_scale: float | None = None
    jitter: str | None = None
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: str | None = None
    blur_sigma: str = "0.1,2.0"
    solarize_p: str | None = None
    knn_k: int = 20
    knn_t: float = 0.1
    knn_bank: int = 4096
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
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        for key, value in METHOD_DEFAULTS[self.method].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        for ok, message in self.checks():
            if not ok:
                raise ValueError(message)

    def checks(self) -> list[tuple[bool, str]]:
        def finite(*names: str) -> list[tuple[bool, str]]:
            return [(v is None or (isinstance(v, int | float) and math.isfinite(v)),
                     f"{n.replace('_', '-')} must be a finite number, got {v}")
                    for n in names for v in [getattr(self, n)]]

        def unit(name: str, low_open: bool = False) -> tuple[bool, str]:
            v = getattr(self, name)
            ok = v is None or (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0)
            return ok, f"{name.replace('_', '-')} must lie in {'(0' if low_open else '[0'}, 1]"

        checks = finite("lr", "lr_decay", "weight_decay", "momentum", "warmup_epochs", "alpha",
                        "gamma1", "gamma2", "temperature", "ema", "ema_end", "crop_scale",
                        "jitter_p", "grayscale_p", "knn_t", "val_fraction")
        checks += [
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.lr_scaling in LR_SCALINGS, f"lr-scaling must be one of {LR_SCALINGS}"),
            (self.batch_size >= 1, "batch size must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max-steps must be >= 1"),
            (self.lr is not None and self.lr > 0, "lr must be > 0"),
            (0.0 < self.lr_decay <= 1.0, "lr-decay must lie in (0, 1]"),
            (self.weight_decay is not None and self.weight_decay >= 0,
             "weight-decay must be >= 0"),
            (0.0 <= self.momentum < 1.0, "momentum must lie in [0, 1)"),
            (self.warmup_epochs is not None and self.warmup_epochs >= 0,
             "warmup-epochs must be >= 0"),
            (self.teacher_interval >= 1, "teacher interval must be >= 1"),
            (0.0 <= self.alpha <= 1.0, "alpha must lie in [0, 1]"),
            (self.gamma1 >= 0 and self.gamma2 >= 0, "gamma1 and gamma2 must be >= 0"),
            (self.gamma1 + self.gamma2 > 0, "gamma1 and gamma2 cannot both be 0"),
            (self.temperature is None or self.temperature > 0, "temperature must be > 0"),
            unit("ema"), unit("ema_end"), unit("crop_scale", low_open=True),
            unit("jitter_p"), unit("grayscale_p"),
            (self.queue_size >= 1, "queue-size must be >= 1"),
            (self.knn_k >= 1 and self.knn_bank >= 1, "knn-k and knn-bank must be >= 1"),
            (self.knn_t > 0, "knn-t must be > 0"),
            (0.0 <= self.val_fraction < 1.0, "val fraction must lie in [0, 1)"),
            (self.checkpoint_every >= 1, "checkpoint-every must be >= 1"),
            (self.keep_checkpoints >= 1, "keep-checkpoints must be >= 1"),
            (self.log_every >= 1, "log-every must be >= 1"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.epoch_size is None or self.epoch_size >= 1, "epoch-size must be >= 1"),
            (self.norm in ("store", "imagenet"), "norm must be 'store' or 'imagenet'"),
        ]
        for name in ("proj_hidden", "proj_dim", "pred_hidden"):
            v = getattr(self, name)
            checks.append((v is None or v >= 0, f"{name.replace('_', '-')} must be >= 0"))
        for name, n in (("jitter", 4), ("blur_p", 2), ("blur_sigma", 2), ("solarize_p", 2)):
            text = getattr(self, name)
            if text is not None:
                floats(text, n, name.replace("_", "-"))  # raises with the reason
        return checks

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v
                for k, v in dataclasses.asdict(self).items()}
