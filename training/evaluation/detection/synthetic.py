"""A detection set with known boxes: generated objects pasted on real UC Merced scenes.

For tests and benchmarks where no annotated detection set can be shipped (Levir cannot
be redistributed). The backgrounds are real aerial images; the objects are generated
shapes standing in for Levir's classes (a cross for an airplane, an elongated hull for
a ship, a ring for an oil tank), each box the exact extent of its pasted pixels. The
result is written in the COCO layout that ``geokr-eval detect`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pipeline.errors import InputError

CLASSES = ("airplane", "ship", "oiltank")
UCM_SUFFIX = ".jpg"


def shape_mask(kind: str, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of one generated object."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    w, h = width - 1, height - 1
    if kind == "airplane":  # fuselage and wings
        draw.rectangle([w * 0.4, 0, w * 0.6, h], fill=1)
        draw.rectangle([0, h * 0.3, w, h * 0.5], fill=1)
        draw.rectangle([w * 0.25, h * 0.85, w * 0.75, h], fill=1)
    elif kind == "ship":
        draw.ellipse([0, 0, w, h], fill=1)
    elif kind == "oiltank":
        draw.ellipse([0, 0, w, h], fill=1)
        draw.ellipse([w * 0.3, h * 0.3, w * 0.7, h * 0.7], fill=0)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return np.asarray(canvas, bool)


def _object_size(kind: str, rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    side = int(rng.integers(lo, hi + 1))
    if kind == "ship":  # long and thin, either way round
        thin = max(4, side // 3)
        return (side, thin) if rng.random() < 0.5 else (thin, side)
    return side, side


def _free(box: list[int], taken: list[list[int]], gap: int) -> bool:
    return all(box[2] + gap <= t[0] or t[2] + gap <= box[0] or
               box[3] + gap <= t[1] or t[3] + gap <= box[1] for t in taken)


def paste_objects(image: np.ndarray, rng: np.random.Generator, n_objects: int,
                  classes: tuple[str, ...], size_range: tuple[int, int]
                  ) -> tuple[np.ndarray, list[tuple[list[int], int]]]:
    """Paste up to ``n_objects`` non-touching objects; (image, [(x1, y1, x2, y2), class])."""
    out = image.copy()
    height, width = out.shape[:2]
    objects: list[tuple[list[int], int]] = []
    for _ in range(n_objects * 20):
        if len(objects) == n_objects:
            break
        label = int(rng.integers(len(classes)))
        w, h = _object_size(classes[label], rng, *size_range)
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        mask = shape_mask(classes[label], w, h)
        ys, xs = np.nonzero(mask)
        box = [x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1]
        if not _free(box, [b for b, _ in objects], gap=2):
            continue
        colour = rng.integers(200, 256, 3) if rng.random() < 0.5 else rng.integers(0, 50, 3)
        out[y:y + h, x:x + w][mask] = colour.astype(np.uint8)
        objects.append((box, label))
    return out, objects


def ucm_backgrounds(ucm: Path, n: int) -> list[Path]:
    """``n`` UC Merced images spread over its classes (round robin in name order)."""
    folders = sorted(d for d in ucm.iterdir() if d.is_dir()) if ucm.is_dir() else []
    lists = [sorted(d.glob(f"*{UCM_SUFFIX}")) for d in folders]
    picked = [files[i] for i in range(max(map(len, lists), default=0)) for files in lists
              if i < len(files)][:n]
    if len(picked) < n:
        raise InputError(ucm, f"{len(picked)} UC Merced images, {n} needed")
    return picked


def make_synthetic(ucm: Path, out: Path, n_images: int = 60, image_size: int = 256,
                   objects: tuple[int, int] = (1, 5), size_range: tuple[int, int] = (16, 40),
                   classes: tuple[str, ...] = CLASSES, seed: int = 0) -> Path:
    """Write ``out/images/*.png`` and ``out/annotations.json`` (COCO); returns ``out``."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, src in enumerate(ucm_backgrounds(ucm, n_images), start=1):
        with Image.open(src) as img:
            rgb = np.asarray(img.convert("RGB").resize((image_size, image_size),
                                                       Image.Resampling.BILINEAR))
        pasted, objs = paste_objects(rgb, rng, int(rng.integers(objects[0], objects[1] + 1)),
                                     classes, size_range)
        name = f"{src.stem}.png"
        Image.fromarray(pasted).save(out / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": image_size,
                       "height": image_size})
        for (x1, y1, x2, y2), label in objs:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    categories = [{"id": i + 1, "name": c} for i, c in enumerate(classes)]
    (out / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}, indent=1))
    return out
