"""Detection annotations read into one structure: COCO JSON or the Levir text layout.

COCO: ``DATA/annotations.json`` with ``images``, ``annotations`` (``bbox`` = x, y, w, h)
and ``categories``; image files under ``DATA/images/``. Levir: each image beside a
text file of the same stem, one object per line, ``CLASS XMIN YMIN XMAX YMAX`` (the
class a 1-based code or a name; commas or blanks between fields); an image without a
text file has no objects.

Bad annotations stop the run with one line naming the file: a class that is not in the
class list, a box outside its image, an image that cannot be decoded.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError

COCO_FILE = "annotations.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
LEVIR_CLASSES = ("airplane", "ship", "oiltank")
BOX_TOLERANCE = 1e-3  # pixels: float round-off in converted annotation files


@dataclasses.dataclass(frozen=True)
class Annotated:
    """One image and its objects: ``boxes`` (K, 4) x1, y1, x2, y2 pixels, ``labels`` (K,).

    ``source`` is the annotation file and ``refs`` names each box in it (annotation id
    or line number), so an error points at the line to fix.
    """

    path: Path
    boxes: np.ndarray
    labels: np.ndarray
    source: Path
    refs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Annotations:
    images: list[Annotated]
    classes: list[str]
    files: list[Path]  # every input file, for the resume fingerprint
    crowd_skipped: int = 0


def decode_rgb(path: Path) -> np.ndarray:
    """RGB uint8 (3, H, W) of any PIL-readable image."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"cannot decode image ({exc})") from None
    return rgb.transpose(2, 0, 1)


def check_boxes(item: Annotated, width: int, height: int) -> None:
    """Every box has a positive size and lies inside its ``width`` × ``height`` image."""
    tol = BOX_TOLERANCE
    for box, ref in zip(item.boxes, item.refs, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        if not (x2 > x1 and y2 > y1):
            raise InputError(item.source, f"{ref}: empty box {[x1, y1, x2, y2]} "
                                          f"({item.path.name})")
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            raise InputError(item.source, f"{ref}: box {[x1, y1, x2, y2]} outside the "
                                          f"{width}×{height} image {item.path.name}")


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Absorb the tolerated round-off at the image edge."""
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)


def read_image(item: Annotated) -> tuple[np.ndarray, np.ndarray]:
    """The decoded image and its checked boxes."""
    rgb = decode_rgb(item.path)
    height, width = rgb.shape[1:]
    check_boxes(item, width, height)
    return rgb, _clip(item.boxes, width, height)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable COCO annotation file ({exc})") from None
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations",
                                                                  "categories")):
        raise InputError(path, "expected a JSON object with images, annotations, categories")
    return data


def read_coco(root: Path) -> Annotations:
    """``root/annotations.json`` + ``root/images/``; classes in category-id order."""
    path = root / COCO_FILE
    data = _load_json(path)
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        files = {int(i["id"]): str(i["file_name"]) for i in data["images"]}
        anns = [(str(a.get("id", n)), int(a["image_id"]), int(a["category_id"]),
                 [float(v) for v in a["bbox"]], bool(a.get("iscrowd", 0)))
                for n, a in enumerate(data["annotations"])]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"malformed COCO record ({type(exc).__name__}: {exc})") from None
    if not files:
        raise InputError(path, "no images")
    index = {cid: i for i, (cid, _) in enumerate(cats)}
    objects: dict[int, list[tuple[str, list[float], int]]] = {i: [] for i in files}
    for ref, image_id, cat, (x, y, w, h), crowd in anns:
        if image_id not in files:
            raise InputError(path, f"annotation {ref}: unknown image_id {image_id}")
        if cat not in index:
            raise InputError(path, f"annotation {ref}: unknown class (category_id {cat})")
        if not crowd:  # crowd regions are not single objects
            objects[image_id].append((f"annotation {ref}", [x, y, x + w, y + h], index[cat]))
    images = [_annotated(_image_path(root, name), objects[i], path)
              for i, name in sorted(files.items(), key=lambda kv: kv[1])]
    return Annotations(images, [name for _, name in cats],
                       [path, *(item.path for item in images)],
                       crowd_skipped=sum(crowd for *_, crowd in anns))


def _image_path(root: Path, name: str) -> Path:
    under = root / "images" / name
    return under if under.exists() or not (root / name).exists() else root / name


def _annotated(image: Path, objects: list[tuple[str, list[float], int]], source: Path
               ) -> Annotated:
    boxes = np.array([o[1] for o in objects], np.float64).reshape(-1, 4)
    labels = np.array([o[2] for o in objects], np.int64)
    return Annotated(image, boxes, labels, source, tuple(o[0] for o in objects))


def _levir_class(token: str, classes: tuple[str, ...]) -> int | None:
    if token.isdigit():
        code = int(token)
        return code - 1 if 1 <= code <= len(classes) else None
    return classes.index(token) if token in classes else None


def read_levir_file(text_file: Path, image: Path, classes: tuple[str, ...]) -> Annotated:
    """One Levir text file: ``CLASS XMIN YMIN XMAX YMAX`` per line."""
    try:
        lines = text_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(text_file, f"unreadable annotation file ({exc})") from None
    objects = []
    for lineno, line in enumerate(lines, start=1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields:
            continue
        label = _levir_class(fields[0], classes)
        if label is None:
            raise InputError(text_file, f"line {lineno}: unknown class {fields[0]!r} "
                                        f"(classes: {', '.join(classes)})")
        try:
            box = [float(v) for v in fields[1:5]]
        except ValueError:
            box = []
        if len(fields) < 5 or len(box) != 4:
            raise InputError(text_file, f"line {lineno}: expected CLASS XMIN YMIN XMAX YMAX")
        objects.append((f"line {lineno}", box, label))
    return _annotated(image, objects, text_file)


def read_levir(root: Path, classes: tuple[str, ...] = LEVIR_CLASSES) -> Annotations:
    """Every image under ``root`` with its same-stem ``.txt`` (absent: no objects)."""
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(root, f"no {COCO_FILE} and no images (expected COCO or Levir layout)")
    items, files = [], []
    for image in images:
        text_file = image.with_suffix(".txt")
        if text_file.is_file():
            items.append(read_levir_file(text_file, image, classes))
            files += [image, text_file]
        else:
            items.append(_annotated(image, [], image))
            files.append(image)
    return Annotations(items, list(classes), files)


def read_annotations(root: Path, levir_classes: tuple[str, ...] = LEVIR_CLASSES
                     ) -> Annotations:
    """COCO when ``root/annotations.json`` exists, else the Levir layout."""
    if not root.is_dir():
        raise InputError(root, "not a directory")
    if (root / COCO_FILE).is_file():
        return read_coco(root)
    return read_levir(root, levir_classes)
