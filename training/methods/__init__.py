"""Pre-training methods, one module each, behind one contract (:class:`Method`).

``geokr`` and ``classification`` learn from a label set; ``simclr``, ``mocov2`` and
``byol`` need none.  Their defaults and sources are in :mod:`training.config`.
"""

from __future__ import annotations

from training.config import TrainConfig
from training.methods.base import Context, Method
from training.methods.byol import BYOL
from training.methods.geokr import Classification, GeoKR
from training.methods.mocov2 import MoCoV2
from training.methods.simclr import SimCLR

LABELLED: dict[str, type[GeoKR] | type[Classification]] = {
    "geokr": GeoKR, "classification": Classification}
SELF_SUPERVISED: dict[str, type[SimCLR] | type[MoCoV2] | type[BYOL]] = {
    "simclr": SimCLR, "mocov2": MoCoV2, "byol": BYOL}


def needs_labels(name: str) -> bool:
    return name in LABELLED


def build_method(cfg: TrainConfig, n_classes: int) -> Method:
    if cfg.method in LABELLED:
        return LABELLED[cfg.method](cfg, n_classes)
    return SELF_SUPERVISED[cfg.method](cfg)


__all__ = ["Context", "Method", "build_method", "needs_labels"]
