"""ImageFolder data decoded once into one uint8 tensor, ready to move to the GPU whole."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError
from pipeline.report import RunReport

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


@dataclasses.dataclass
class ImageSet:
    """All images of a data set: ``images`` uint8 (N, 3, S, S), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: np.ndarray
    classes: list[str]
    paths: list[str]


def list_image_folder(root: Path, max_per_class: int | None = None) -> list[tuple[Path, int]]:
    """(file, class index) pairs, classes in sorted folder order as torchvision does."""
    if not root.is_dir():
        raise InputError(root, "not a directory")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise InputError(root, "no class folders (expected ROOT/<class>/<image>)")
    items: list[tuple[Path, int]] = []
    for label, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(folder, "class folder without images")
        items.extend((f, label) for f in files[:max_per_class])
    return items


def decode_square(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (3, size, size): shorter side resized to ``size``, then centre-cropped.

    Keeps images that are a few pixels off the nominal size (44 in UC Merced) without
    distorting them.
    """
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"cannot decode image ({exc})") from None
    w, h = rgb.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        rgb = rgb.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def load_image_folder(
    root: Path, size: int, report: RunReport, max_per_class: int | None = None,
    workers: int = 4,
) -> ImageSet:
    """Decode every image; undecodable files are reported, counted and left out."""
    items = list_image_folder(root, max_per_class)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))

    def one(item: tuple[Path, int]) -> np.ndarray | None:
        try:
            return decode_square(item[0], size)
        except InputError as exc:
            report.fail(exc.path, exc.reason, kind="images_failed")
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        arrays = list(pool.map(one, items))
    kept = [(a, item) for a, item in zip(arrays, items, strict=True) if a is not None]
    if not kept:
        raise InputError(root, "no decodable images")
    report.counts["images"] += len(kept)
    return ImageSet(
        images=torch.from_numpy(np.stack([a for a, _ in kept])),
        labels=np.array([label for _, (_, label) in kept], dtype=np.int64),
        classes=classes,
        paths=[str(p) for _, (p, _) in kept],
    )
