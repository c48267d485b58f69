"""Student/teacher network: a torchvision classifier whose last linear layer is the K-way head.

The network keeps torchvision's own module tree, so its state dict minus the head
keys is a plain torchvision backbone: ``torchvision.models.<arch>()`` loads it
with ``strict=True`` once its own head keys are set aside.  For ResNets the head
is ``fc``; for VGG it is ``classifier.6`` (fc6 and fc7 stay in the backbone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from pipeline.errors import InputError


class GeoKRNet(nn.Module):
    """A torchvision model with its last ``nn.Linear`` replaced by a K-way projection head."""

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        self.net = torchvision_classifier(arch)
        self.arch = arch
        self.head_name = find_head(self.net, arch)
        replace_head(self.net, self.head_name, lambda n: nn.Linear(n, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if isinstance(out, torch.Tensor):
            return out
        return out[0]  # GoogLeNet / Inception return (logits, aux...) while training

    @property
    def head(self) -> nn.Linear:
        head = self.net.get_submodule(self.head_name)
        assert isinstance(head, nn.Linear)
        return head

    def is_head_key(self, key: str) -> bool:
        return key.startswith(self.head_name + ".")

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Torchvision-keyed weights without the head, detached on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()
                if not self.is_head_key(k)}

    def load_init(self, path: Path) -> list[str]:
        """Start from a weights file (e.g. ImageNet); its own classifier is ignored."""
        return load_backbone(self.net, path, self.head_name, self.arch)


class Encoder(nn.Module):
    """A torchvision model whose classifier is an identity: features out, torchvision keys.

    The self-supervised methods put their own heads on top; ``backbone_state_dict`` is
    then exactly what ``torchvision.models.<arch>()`` loads once its classifier is set aside.
    """

    def __init__(self, arch: str) -> None:
        super().__init__()
        self.net = torchvision_classifier(arch)
        self.arch = arch
        self.head_name = find_head(self.net, arch)
        self.dim = replace_head(self.net, self.head_name, lambda n: nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return torch.flatten(out if isinstance(out, torch.Tensor) else out[0], 1)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def load_init(self, path: Path) -> list[str]:
        return load_backbone(self.net, path, self.head_name, self.arch)


def torchvision_classifier(arch: str) -> nn.Module:
    """``torchvision.models.<arch>`` with random weights; classification models only.

    Refused by name before anything is built: a detection or segmentation builder would
    otherwise fetch ImageNet weights for its backbone.
    """
    if arch not in torchvision.models.list_models(module=torchvision.models):
        if arch in torchvision.models.list_models():
            raise InputError(arch, "not a classification model (detection, segmentation "
                             "and video models are not backbones for this trainer)")
        raise InputError(arch, "unknown torchvision architecture")
    return torchvision.models.get_model(arch, weights=None)


def replace_head(net: nn.Module, name: str, make: Callable[[int], nn.Module]) -> int:
    """Swap the classifier ``name`` for ``make(in_features)``; returns ``in_features``."""
    old = net.get_submodule(name)
    assert isinstance(old, nn.Linear)
    parent, _, leaf = name.rpartition(".")
    setattr(net.get_submodule(parent), leaf, make(old.in_features))
    return old.in_features


def load_backbone(net: nn.Module, path: Path, head_name: str, arch: str) -> list[str]:
    """Load every non-classifier key of a weights file, or say which key does not fit."""
    def is_head(key: str) -> bool:
        return key.startswith(head_name + ".")

    state = {k: v for k, v in read_state_dict(path).items() if not is_head(k)}
    own = {k: v for k, v in net.state_dict().items() if not is_head(k)}
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise InputError(path, f"weights do not fit {arch}: {key} has shape "
                             f"{tuple(value.shape)}, {arch} needs {tuple(own[key].shape)}")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise InputError(path, f"weights do not fit {arch}: "
                         f"{len(missing)} missing keys (e.g. {missing[:2]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})")
    net.load_state_dict(state, strict=False)
    return sorted(state)


def find_head(net: nn.Module, arch: str) -> str:
    """Name of the last ``nn.Linear`` registered in the model: torchvision's classifier."""
    linears = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError(arch, "architecture has no fully connected classifier to replace")
    return linears[-1]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a plain, ``{"state_dict": ...}`` or ``{"model": ...}`` file."""
    if not path.is_file():
        raise InputError(path, "weights file does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a readable weights file ({type(exc).__name__})") from None
    for key in ("state_dict", "model", "student"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise InputError(path, "weights file holds no state dict")
    return {_strip_prefix(str(k)): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod.", "net."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key
