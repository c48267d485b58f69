"""Land-cover tiles: GlobeLand30 names, and a WGS84 spatial index of any tile set.

The index is built once from each raster's own CRS and bounds (a tile's name
can be wrong, its georeferencing is what the pixels obey), saved as a JSON
catalog next to the label sets, and reused while no file has changed.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.errors import RasterioIOError

from pipeline.errors import InputError

INDEX_VERSION = 1
INDEX_ATTR = "geokr_tile_index"
RASTER_SUFFIXES = (".tif", ".tiff")
_LEGACY_CATALOG = re.compile(r"[0-9a-f]{16}\.json")
_GL30 = re.compile(r"^([NS])(\d{1,2})_(\d{1,2})_(\d{4})LC030$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class GL30Name:
    """``N50_30_2010LC030``: hemisphere, UTM zone, band latitude, year."""

    hemisphere: str
    zone: int
    band: int
    year: int

    @classmethod
    def parse(cls, path: str | Path) -> GL30Name | None:
        m = _GL30.match(Path(path).stem)
        if not m:
            return None
        h, zone, band, year = m.groups()
        return cls(h.upper(), int(zone), int(band), int(year))

    @property
    def stem(self) -> str:
        return f"{self.hemisphere}{self.zone:02d}_{self.band:02d}_{self.year}LC030"

    @property
    def epsg(self) -> int:
        """The WGS84 / UTM zone the product puts this tile in."""
        return (32600 if self.hemisphere == "N" else 32700) + self.zone

    def relpath(self) -> Path:
        """Layout of the distributed archive: ``N50_30_2010LC030/n50_30_2010lc030.tif``."""
        return Path(self.stem) / f"{self.stem.lower()}.tif"


@dataclasses.dataclass(frozen=True)
class TileRecord:
    """What the index keeps of one raster: enough to read it without reopening twice."""

    path: str
    crs_wkt: str
    transform: tuple[float, ...]  # GDAL order
    width: int
    height: int
    nodata: float | None
    footprint: tuple[tuple[float, float], ...]  # WGS84 lon/lat ring
    size: int
    mtime: float
    year: int | None = None
    zone: int | None = None
    note: str | None = None

    @property
    def polygon(self) -> shapely.Geometry:
        return footprint_geometry(self.footprint)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TileRecord:
        d = dict(d)
        d["transform"] = tuple(d["transform"])
        d["footprint"] = tuple(tuple(p) for p in d["footprint"])
        return cls(**d)


def describe_tile(path: Path, densify: int = 16) -> TileRecord:
    """Read one raster's georeferencing; InputError if it has none."""
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise InputError(path, "raster has no CRS")
            if ds.count < 1:
                raise InputError(path, "raster has no band")
            crs_wkt, t = ds.crs.to_wkt(), ds.transform
            width, height, nodata = ds.width, ds.height, ds.nodata
    except RasterioIOError as e:
        raise InputError(path, f"cannot open raster ({str(e).splitlines()[0]})") from None
    ring = _footprint(crs_wkt, t.to_gdal(), width, height, densify)
    name = GL30Name.parse(path)
    note = None
    if name is not None:
        epsg = CRS.from_wkt(crs_wkt).to_epsg()
        if epsg != name.epsg:
            note = f"name says EPSG:{name.epsg}, raster is {epsg or 'another CRS'}; raster wins"
    st = path.stat()
    return TileRecord(
        path=str(path), crs_wkt=crs_wkt, transform=tuple(t.to_gdal()), width=width,
        height=height, nodata=nodata, footprint=ring, size=st.st_size, mtime=st.st_mtime,
        year=name.year if name else None, zone=name.zone if name else None, note=note,
    )


def _footprint(
    crs_wkt: str, gt: Sequence[float], width: int, height: int, densify: int
) -> tuple[tuple[float, float], ...]:
    """The raster outline, densified so UTM edges stay true in lon/lat."""
    s = np.linspace(0.0, 1.0, densify + 1)[:-1]
    u = np.concatenate([s * width, np.full_like(s, width), (1 - s) * width, np.zeros_like(s)])
    v = np.concatenate([np.zeros_like(s), s * height, np.full_like(s, height), (1 - s) * height])
    x = gt[0] + gt[1] * u + gt[2] * v
    y = gt[3] + gt[4] * u + gt[5] * v
    to_ll = Transformer.from_crs(CRS.from_wkt(crs_wkt), "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(x, y)
    return tuple((float(a), float(b)) for a, b in zip(lon, lat, strict=True))


def footprint_geometry(ring: Sequence[tuple[float, float]]) -> shapely.Geometry:
    """The lon/lat outline as a geometry; one that crosses ±180° is cut in two there."""
    lon = np.array([p[0] for p in ring])
    lat = np.array([p[1] for p in ring])
    if lon.max() - lon.min() <= 180:
        return shapely.Polygon(np.c_[lon, lat])
    unwrapped = shapely.Polygon(np.c_[np.where(lon < 0, lon + 360, lon), lat])
    east = shapely.intersection(unwrapped, shapely.box(-180, -90, 180, 90))
    west = shapely.transform(shapely.intersection(unwrapped, shapely.box(180, -90, 540, 90)),
                             lambda xy: xy - [360, 0])
    return shapely.union(east, west)


def chip_geometries(bounds_wgs84: np.ndarray) -> np.ndarray:
    """Chip boxes; ``west > east`` (as rasterio writes a box across ±180°) gives two boxes."""
    b = np.asarray(bounds_wgs84, dtype=np.float64).reshape(-1, 4)
    boxes = shapely.box(*b.T)
    for i in np.flatnonzero(b[:, 0] > b[:, 2]):
        w, s, e, n = b[i]
        boxes[i] = shapely.union(shapely.box(w, s, 180, n), shapely.box(-180, s, e, n))
    return boxes


def expand_sources(sources: Iterable[str]) -> list[Path]:
    """Files, folders (searched recursively) and glob patterns → raster paths."""
    found: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            hits = sorted(q for q in p.rglob("*") if q.suffix.lower() in RASTER_SUFFIXES)
            if not hits:
                raise InputError(p, "folder holds no land-cover rasters (.tif)")
        elif p.is_file():
            hits = [p]
        elif glob.has_magic(src):
            hits = sorted(Path(q) for q in glob.glob(src, recursive=True) if Path(q).is_file())
            if not hits:
                raise InputError(src, "pattern matches no file")
        else:
            raise InputError(p, "land-cover path does not exist")
        found.extend(q.resolve() for q in hits)
    return sorted(set(found))


class TileIndex:
    """Tile records plus an STRtree over their WGS84 footprints."""

    def __init__(self, records: Sequence[TileRecord]) -> None:
        self.records = list(records)
        self.tree = shapely.STRtree([r.polygon for r in self.records])

    def query(self, bounds_wgs84: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(chip, tile) index pairs whose footprints intersect the chip boxes."""
        pairs = self.tree.query(chip_geometries(bounds_wgs84), predicate="intersects")
        return pairs[0].astype(np.int64), pairs[1].astype(np.int64)

    def save(self, path: Path, sources: Sequence[str]) -> None:
        """A ``.json`` file, or else (a catalog kept inside a store) a zarr group
        ``path/zarr.json`` holding the catalog as an attribute, under a parent group:
        plain zarr readers of the store then see valid members only."""
        doc = {"version": INDEX_VERSION, "sources": list(sources),
               "tiles": [r.to_dict() for r in self.records]}
        if path.suffix == ".json":
            _write_json(path, doc)
            return
        _write_json(path / "zarr.json", _group_doc({INDEX_ATTR: doc}))
        if not (path.parent / "zarr.json").is_file():
            _write_json(path.parent / "zarr.json", _group_doc({}))
        for legacy in path.parent.glob("*.json"):  # what earlier versions kept there
            if _LEGACY_CATALOG.fullmatch(legacy.name):
                legacy.unlink()

    @classmethod
    def load(cls, path: Path) -> TileIndex:
        try:
            if path.suffix == ".json":
                doc = json.loads(path.read_text())
            else:
                doc = json.loads((path / "zarr.json").read_text())["attributes"][INDEX_ATTR]
            records = [TileRecord.from_dict(d) for d in doc["tiles"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(path, f"not a tile index ({e!r})") from None
        return cls(records)

    @staticmethod
    def exists(path: Path) -> bool:
        return (path if path.suffix == ".json" else path / "zarr.json").is_file()


def _group_doc(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)


def build_index(
    paths: Sequence[Path], cache: Path | None = None, on_error: Any = None,
    write_cache: bool = True,
) -> TileIndex:
    """Index ``paths``, reusing ``cache`` for files whose size and mtime are unchanged.

    ``on_error(InputError)`` is called for each unusable raster, which is left
    out; without it the first one is raised. ``write_cache=False`` only reads it
    (a reader such as ``stats`` never writes into a store).
    """
    known: dict[str, TileRecord] = {}
    if cache is not None and TileIndex.exists(cache):
        try:
            known = {r.path: r for r in TileIndex.load(cache).records}
        except InputError:
            known = {}
    records = []
    for p in paths:
        st = p.stat()
        old = known.get(str(p))
        if old is not None and old.size == st.st_size and old.mtime == st.st_mtime:
            records.append(old)
            continue
        try:
            records.append(describe_tile(p))
        except InputError as e:
            if on_error is None:
                raise
            on_error(e)
    if not records:
        raise InputError(", ".join(map(str, paths[:3])), "no usable land-cover raster")
    index = TileIndex(records)
    if cache is not None and write_cache:
        index.save(cache, [str(p) for p in paths])
    return index
