"""Student/teacher network: a torchvision classifier whose last linear layer is the K-way head.

The network keeps torchvision's own module tree, so its state dict minus the head
keys is a plain torchvision backbone: ``torchvision.models.<arch>()`` loads it
with ``strict=True`` once its own head keys are set aside.  For ResNets the head
is ``fc``; for VGG it is ``classifier.6`` (fc6 and fc7 stay in the backbone).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from pipeline.errors import InputError


class GeoKRNet(nn.Module):
    """A torchvision model with its last ``nn.Linear`` replaced by a K-way projection head."""

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        try:
            self.net = torchvision.models.get_model(arch, weights=None)
        except ValueError:
            raise InputError(arch, "unknown torchvision architecture") from None
        self.arch = arch
        self.head_name = find_head(self.net, arch)
        old = self.net.get_submodule(self.head_name)
        assert isinstance(old, nn.Linear)
        parent, _, leaf = self.head_name.rpartition(".")
        setattr(self.net.get_submodule(parent), leaf, nn.Linear(old.in_features, num_classes))

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
        state = read_state_dict(path)
        state = {k: v for k, v in state.items() if not self.is_head_key(k)}
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not self.is_head_key(k)]
        if missing or unexpected:
            raise InputError(path, f"weights do not fit {self.arch}: "
                             f"{len(missing)} missing keys (e.g. {missing[:2]}), "
                             f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})")
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
