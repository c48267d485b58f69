"""Image/mask pairs cut into square uint8 tiles for segmentation.

Two layouts: DATA/images/<stem>.* with DATA/masks/<stem>.* (GeoTIFF or PNG, any size,
mask values are class codes, the mask's nodata is ignored), or .npz files holding
``img`` (H, W, C) reflectance and ``msk`` (H, W, 1) codes (the cloud-mask layout:
blue, green, red first; one code is the positive class, all others the negative).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import InputError
from pipeline.report import RunReport

IGNORE = 255
RASTER_SUFFIXES = (".tif", ".tiff", ".png")


@dataclasses.dataclass(frozen=True)
class NpzSpec:
    """How to read an npz pair: which bands are R, G, B, the reflectance for 255, the class."""

    rgb_bands: tuple[int, int, int] = (2, 1, 0)
    scale: float = 1.0
    positive: int = 4
    names: tuple[str, str] = ("clear", "cloud")


@dataclasses.dataclass
class TileSet:
    """``images`` uint8 (N, 3, T, T); ``masks`` uint8 (N, T, T) class index or IGNORE."""

    images: torch.Tensor
    masks: torch.Tensor
    classes: list[str]
    sources: list[str]

    def dominant(self) -> np.ndarray:
        """Most frequent class of each tile: the stratum for stratified splits."""
        m = self.masks.reshape(len(self.masks), -1).long()
        counts = torch.zeros(len(m), len(self.classes) + 1, dtype=torch.long)
        counts.scatter_add_(1, m.clamp(max=len(self.classes)), torch.ones_like(m))
        return counts[:, : len(self.classes)].argmax(1).numpy()


def reflectance_to_8bit(x: np.ndarray, scale: float) -> np.ndarray:
    """One fixed linear map for all files, so brightness means the same everywhere."""
    return np.clip(np.nan_to_num(x) / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)


def stretch_to_8bit(bands: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band 2–98 % stretch over valid pixels, for non-8-bit rasters."""
    out = np.zeros(bands.shape, np.uint8)
    for i, band in enumerate(bands):
        vals = band[valid]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, [2, 98])
        out[i] = np.clip((band - lo) / max(hi - lo, 1e-9) * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def cut_tiles(image: np.ndarray, mask: np.ndarray, size: int
              ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Non-overlapping tiles (remainder dropped); tiles with no labelled pixel are skipped."""
    for r in range(0, mask.shape[0] - size + 1, size):
        for c in range(0, mask.shape[1] - size + 1, size):
            m = mask[r:r + size, c:c + size]
            if (m != IGNORE).any():
                yield r, c, image[:, r:r + size, c:c + size], m


def read_npz(path: Path, spec: NpzSpec) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as z:
            img, msk = z["img"], z["msk"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(path, f"not an npz with 'img' and 'msk' ({exc})") from None
    if img.ndim != 3 or max(spec.rgb_bands) >= img.shape[2] or msk.shape[:2] != img.shape[:2]:
        raise InputError(path, f"img {img.shape} / msk {msk.shape}: expected (H,W,C) / (H,W,1)")
    rgb = reflectance_to_8bit(img[..., list(spec.rgb_bands)].transpose(2, 0, 1), spec.scale)
    mask = (msk.reshape(msk.shape[:2]) == spec.positive).astype(np.uint8)
    mask[~np.isfinite(img).all(axis=2)] = IGNORE
    return rgb, mask


def read_raster_pair(image: Path, mask: Path) -> tuple[np.ndarray, np.ndarray, float | None]:
    """8-bit RGB (3, H, W) and the raw mask band with its nodata value."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # plain PNG pairs are fine
            with rasterio.open(image) as src:
                bands = src.read(list(range(1, min(src.count, 3) + 1)))
                nodata = src.nodata
            with rasterio.open(mask) as src:
                codes, mask_nodata = src.read(1), src.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(image, f"cannot read pair ({exc})") from None
    if bands.shape[1:] != codes.shape:
        raise InputError(mask, f"size {codes.shape} differs from image {bands.shape[1:]}")
    if len(bands) < 3:
        bands = np.repeat(bands[:1], 3, axis=0)
    valid = (bands != nodata).all(axis=0) if nodata is not None else np.ones(codes.shape, bool)
    rgb = bands.astype(np.uint8) if bands.dtype == np.uint8 else stretch_to_8bit(bands, valid)
    codes = codes.astype(np.int64)
    if mask_nodata is not None:
        codes[codes == int(mask_nodata)] = -1
    codes[~valid] = -1
    return rgb, codes, mask_nodata


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    masks = {p.stem: p for p in (root / "masks").iterdir() if p.suffix.lower() in RASTER_SUFFIXES}
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
    pairs = [(p, masks[p.stem]) for p in images if p.stem in masks]
    if not pairs:
        raise InputError(root, "no images/<stem> with a masks/<stem> of the same stem")
    return pairs


def _class_names(root: Path, codes: list[int]) -> list[str]:
    """Names from an optional classes.json ({"code": "name"}), else the codes."""
    names_file = root / "classes.json"
    names = json.loads(names_file.read_text()) if names_file.is_file() else {}
    return [str(names.get(str(c), c)) for c in codes]


def _stack(tiles: list[tuple[str, np.ndarray, np.ndarray]], classes: list[str], where: Path
           ) -> TileSet:
    if not tiles:
        raise InputError(where, "no tile with labelled pixels (image smaller than --tile-size?)")
    return TileSet(images=torch.from_numpy(np.stack([t[1] for t in tiles])),
                   masks=torch.from_numpy(np.stack([t[2] for t in tiles])),
                   classes=classes, sources=[t[0] for t in tiles])


def _limit(items: list[tuple[int, int, np.ndarray, np.ndarray]], n: int | None
           ) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """At most ``n`` tiles, spread evenly over the file rather than its top rows."""
    if n is None or len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def load_npz_tiles(paths: list[Path], size: int, spec: NpzSpec, report: RunReport,
                   max_tiles_per_file: int | None = None) -> TileSet:
    tiles = []
    for path in paths:
        try:
            rgb, mask = read_npz(path, spec)
        except InputError as exc:
            report.fail(exc.path, exc.reason, kind="files_failed")
            continue
        for r, c, img, m in _limit(list(cut_tiles(rgb, mask, size)), max_tiles_per_file):
            tiles.append((f"{path.name}@{r},{c}", img, m))
    report.counts["tiles"] += len(tiles)
    return _stack(tiles, list(spec.names), paths[0].parent)


def load_folder_tiles(root: Path, size: int, report: RunReport,
                      max_tiles_per_file: int | None = None) -> TileSet:
    read = []
    for image, mask in _pairs(root):
        try:
            rgb, codes, _ = read_raster_pair(image, mask)
        except InputError as exc:
            report.fail(exc.path, exc.reason, kind="files_failed")
            continue
        read.append((image, rgb, codes))
    values = sorted({int(v) for _, _, codes in read for v in np.unique(codes) if v >= 0})
    if len(values) > IGNORE:
        raise InputError(root / "masks", f"{len(values)} distinct mask codes (at most 255)")
    lookup = {v: i for i, v in enumerate(values)}
    tiles = []
    for image, rgb, codes in read:
        index = np.full(codes.shape, IGNORE, np.uint8)
        for v, i in lookup.items():
            index[codes == v] = i
        for r, c, img, m in _limit(list(cut_tiles(rgb, index, size)), max_tiles_per_file):
            tiles.append((f"{image.name}@{r},{c}", img, m))
    report.counts["tiles"] += len(tiles)
    return _stack(tiles, _class_names(root, values), root)


def load_segmentation(data: Path, size: int, report: RunReport, spec: NpzSpec = NpzSpec(),
                      max_tiles_per_file: int | None = None) -> TileSet:
    """Tiles from an images/+masks/ folder, an .npz file, or a folder of .npz files."""
    if data.is_file() and data.suffix == ".npz":
        return load_npz_tiles([data], size, spec, report, max_tiles_per_file)
    if (data / "images").is_dir() and (data / "masks").is_dir():
        return load_folder_tiles(data, size, report, max_tiles_per_file)
    npz = sorted(data.glob("*.npz")) if data.is_dir() else []
    if npz:
        return load_npz_tiles(npz, size, spec, report, max_tiles_per_file)
    raise InputError(data, "expected images/ and masks/ folders, .npz files, or an .npz file")
