"""Two augmented views per chip on the training device, for the self-supervised methods.

Each view: a random resized crop back to the chip size, a rotation by k*90 degrees and
vertical/horizontal flips (remote-sensing imagery has no canonical "up"; done exactly,
with :func:`training.augment.rotate_flip`), colour jitter with probability ``jitter_p``,
grayscale with ``grayscale_p``, Gaussian blur (kernel ~10 % of the chip, as in SimCLR)
and solarisation, each with a per-view probability (BYOL's views are asymmetric).
Crop, jitter, grayscale, blur and solarisation are kornia's per-sample augmentations.

Determinism: kornia draws from torch's global RNG, so every call runs inside
``torch.random.fork_rng`` seeded from (seed, global step, rank, view): the global RNG
is left as it was, and a resumed run repeats exactly the same views.
"""

from __future__ import annotations

import dataclasses

import kornia.augmentation as K
import torch
from torch import nn

from training.augment import normalise, rotate_flip, step_generator
from training.config import TrainConfig, floats


@dataclasses.dataclass(frozen=True)
class ViewParams:
    crop_scale: float = 0.08
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: tuple[float, float] = (0.5, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> ViewParams:
        assert cfg.crop_scale is not None and cfg.jitter and cfg.blur_p and cfg.solarize_p
        b, c, s, h = floats(cfg.jitter, 4, "jitter")
        p0, p1 = floats(cfg.blur_p, 2, "blur-p")
        lo, hi = floats(cfg.blur_sigma, 2, "blur-sigma")
        s0, s1 = floats(cfg.solarize_p, 2, "solarize-p")
        return cls(cfg.crop_scale, (b, c, s, h), cfg.jitter_p, cfg.grayscale_p, (p0, p1),
                   (lo, hi), (s0, s1))


def blur_kernel(size: int) -> int:
    k = max(3, round(0.1 * size))
    return k if k % 2 else k + 1


def view_pipeline(p: ViewParams, size: int, view: int) -> nn.Sequential:
    b, c, s, h = p.jitter
    return nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(p.crop_scale, 1.0)),
        K.ColorJitter(b, c, s, h, p=p.jitter_p),
        K.RandomGrayscale(p=p.grayscale_p),
        K.RandomGaussianBlur(blur_kernel(size), p.blur_sigma, p=p.blur_p[view]),
        K.RandomSolarize(0.0, 0.0, p=p.solarize_p[view]),
    )


def view_seed(seed: int, step: int, rank: int, view: int) -> int:
    return (seed * 2_654_435_761 + step * 40_503 + rank * 97 + view + 1) % (2**63)


class TwoViews:
    """uint8 (N,3,S,S) on the device -> two normalised float views (N,3,S,S)."""

    def __init__(self, params: ViewParams, size: int, mean: list[float], std: list[float],
                 channels_last: bool = False) -> None:
        self.params = params
        self.pipelines = [view_pipeline(params, size, v) for v in (0, 1)]
        self.mean, self.std = mean, std
        self.channels_last = channels_last

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return normalise(x, tuple(self.mean), tuple(self.std), self.channels_last)

    def view(self, x: torch.Tensor, seed: int, step: int, rank: int, view: int
             ) -> torch.Tensor:
        g = step_generator(x.device, seed, 2 * step + view, rank)
        n = x.shape[0]
        k = torch.randint(0, 4, (n,), device=x.device, generator=g)
        flips = torch.rand(n, 2, device=x.device, generator=g) < 0.5
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(view_seed(seed, step, rank, view))  # no device sync
            y = self.pipelines[view](x)
        return self.normalise(rotate_flip(y, k, flips[:, 0], flips[:, 1]))

    def train(self, chips: torch.Tensor, seed: int, step: int, rank: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
        x = chips.float().div_(255.0)
        return self.view(x, seed, step, rank, 0), self.view(x, seed, step, rank, 1)

    def eval(self, chips: torch.Tensor) -> torch.Tensor:
        return self.normalise(chips.float().div_(255.0))
