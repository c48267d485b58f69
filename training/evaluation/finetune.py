"""One supervised training loop for scene labels and pixel masks, CPU or GPU.

Inputs stay uint8 on the device they were loaded to (the whole data set fits in GPU
memory); each batch is augmented, scaled and, on CUDA, run channels-last under bf16
autocast.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.evaluation.dihedral import random_dihedral


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 200
    lr: float = 1e-3
    batch_size: int = 64
    eval_batch_size: int = 256
    device: str = "cpu"

    @property
    def cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"


def autocast(cfg: FinetuneConfig) -> AbstractContextManager[object]:
    if cfg.cuda:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_input(batch: torch.Tensor, cfg: FinetuneConfig) -> torch.Tensor:
    x = batch.float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if cfg.cuda else x


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch; a trailing batch of one joins the previous (BatchNorm needs two)."""
    chunks = list(torch.randperm(n, generator=generator).split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = torch.cat([chunks[-1], last])
    return chunks


def fit(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, train_idx: np.ndarray,
    cfg: FinetuneConfig, seed: int, frozen: nn.Module | None = None, ignore_index: int = -100,
) -> None:
    """Adam on cross-entropy with random flips/rotations; ``frozen`` stays in eval mode.

    ``targets`` is (N,) for scene labels or (N, H, W) for masks; masks are rotated with
    their images.
    """
    model.to(cfg.device)
    if cfg.cuda:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, fused=cfg.cuda)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.as_tensor(train_idx, dtype=torch.long, device=images.device)
    dense = targets.dim() == 3
    model.train()
    if frozen is not None:
        frozen.eval()
    for _ in tqdm(range(cfg.epochs), desc="epochs", leave=False, unit="ep"):
        for b in batch_indices(len(idx), cfg.batch_size, gen):
            sel = idx[b.to(idx.device)]
            x, y = random_dihedral(images[sel], gen, targets[sel] if dense else None)
            y = y if y is not None else targets[sel]
            with autocast(cfg):
                logits = model(to_input(x, cfg))
            loss = F.cross_entropy(logits.float(), y.long(), ignore_index=ignore_index)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, idx: np.ndarray, cfg: FinetuneConfig
) -> np.ndarray:
    """Arg-max class per sample (or per pixel) for ``images[idx]``, on the CPU."""
    model.eval()
    out = []
    for part in torch.as_tensor(idx, dtype=torch.long).split(cfg.eval_batch_size):
        with autocast(cfg):
            logits = model(to_input(images[part.to(images.device)], cfg))
        out.append(logits.argmax(dim=1).to(torch.uint8 if logits.dim() == 4 else torch.int64))
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def extract_features(
    features: nn.Module, images: torch.Tensor, cfg: FinetuneConfig
) -> torch.Tensor:
    """Frozen-backbone features (N, D) as float32 on the CPU, computed once per backbone."""
    features.to(cfg.device).eval()
    if cfg.cuda:
        features.to(memory_format=torch.channels_last)
    out = []
    for part in torch.arange(images.shape[0]).split(cfg.eval_batch_size):
        with autocast(cfg):
            f = features(to_input(images[part.to(images.device)], cfg))
        out.append(torch.flatten(f, 1).float().cpu())
    return torch.cat(out)
