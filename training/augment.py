"""Per-sample augmentation on the training device, after a uint8 host-to-device copy.

Each sample gets a rotation by k*90 degrees (k in 0..3), a vertical and a
horizontal flip each with probability 1/2, and brightness / contrast /
saturation jitter.  Geometry is done with ``torch.where`` over whole-batch
transposes and flips, so there is no per-sample Python loop and no device sync.
All random draws come from the generator passed in, which the trainer seeds from
(seed, global step, rank): a resumed run repeats exactly the same augmentations.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

GRAY = (0.299, 0.587, 0.114)


@dataclasses.dataclass(frozen=True)
class Jitter:
    """Maximum relative change of each colour property (0 disables it)."""

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


@functools.lru_cache(maxsize=32)
def channel_constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype
                     ) -> torch.Tensor:
    """A (1, 3, 1, 1) constant made once per device: a fresh host-to-device copy every
    step would make the host wait for the device to drain its queue."""
    return torch.tensor(values, device=device, dtype=dtype).view(1, 3, 1, 1)


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
              channels_last: bool) -> torch.Tensor:
    out = (x - channel_constant(mean, x.device, x.dtype)) / channel_constant(std, x.device,
                                                                             x.dtype)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def step_generator(device: torch.device, seed: int, step: int, rank: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step * 4099 + rank) % (2**63))
    return g


def rotate_flip(x: torch.Tensor, k: torch.Tensor, vflip: torch.Tensor, hflip: torch.Tensor
                ) -> torch.Tensor:
    """Per sample: ``torch.rot90(x, k, (2, 3))`` then optional flips of dims 2 and 3.

    rot90 by k is a transpose for odd k, then a flip of dim 2 for k in {1, 2} and of
    dim 3 for k in {2, 3}; the requested flips toggle those.
    """
    def sel(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.view(-1, 1, 1, 1), a, b)

    x = sel(k % 2 == 1, x.transpose(2, 3), x)
    x = sel(((k == 1) | (k == 2)) ^ vflip, x.flip(2), x)
    return sel(((k == 2) | (k == 3)) ^ hflip, x.flip(3), x)


def colour_jitter(x: torch.Tensor, jitter: Jitter, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation on RGB in [0, 1], factors drawn per sample."""
    n = x.shape[0]

    def factor(amount: float) -> torch.Tensor:
        u = torch.rand(n, 1, 1, 1, device=x.device, generator=g)
        return 1.0 + amount * (2.0 * u - 1.0)

    w = channel_constant(GRAY, x.device, x.dtype)
    if jitter.brightness > 0:
        x = (x * factor(jitter.brightness)).clamp_(0.0, 1.0)
    if jitter.contrast > 0:
        mean = (x * w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = ((x - mean) * factor(jitter.contrast) + mean).clamp_(0.0, 1.0)
    if jitter.saturation > 0:
        gray = (x * w).sum(1, keepdim=True)
        x = ((x - gray) * factor(jitter.saturation) + gray).clamp_(0.0, 1.0)
    return x


class GpuAugment:
    """uint8 (N,3,S,S) on the device -> normalised float (N,3,S,S), channels_last."""

    def __init__(self, mean: list[float], std: list[float], jitter: Jitter | None = None,
                 channels_last: bool = False) -> None:
        self.mean = mean
        self.std = std
        self.jitter = jitter or Jitter()
        self.channels_last = channels_last

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return normalise(x, tuple(self.mean), tuple(self.std), self.channels_last)

    def train(self, chips: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = chips.float().div_(255.0)
        n = x.shape[0]
        k = torch.randint(0, 4, (n,), device=x.device, generator=g)
        flips = torch.rand(n, 2, device=x.device, generator=g) < 0.5
        x = rotate_flip(x, k, flips[:, 0], flips[:, 1])
        x = colour_jitter(x, self.jitter, g)
        return self.normalise(x)

    def eval(self, chips: torch.Tensor) -> torch.Tensor:
        return self.normalise(chips.float().div_(255.0))
