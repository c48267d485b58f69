"""Land-cover legends (data in ``catalogs/legends``) and the GeoKR class set.

Every product's codes are mapped onto the ten GlobeLand30 classes, so label
vectors from GlobeLand30, WorldCover or NLCD are comparable (Table III).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.catalog import load_yaml, resolve
from pipeline.errors import InputError

#: The ten GlobeLand30 classes, in code order.
GLOBELAND30_CLASSES: tuple[tuple[int, str], ...] = (
    (10, "cultivated land"),
    (20, "forest"),
    (30, "grassland"),
    (40, "shrubland"),
    (50, "wetland"),
    (60, "water bodies"),
    (70, "tundra"),
    (80, "artificial surfaces"),
    (90, "bare land"),
    (100, "permanent snow and ice"),
)
#: The paper trains on eight classes: tundra and shrubland are dropped.
PAPER_CODES: tuple[int, ...] = (10, 20, 30, 50, 60, 80, 90, 100)

#: Lookup-table values that are not class indices.
NOT_COUNTED = -1  # ocean, no data, or a class outside the class set
UNKNOWN = -2  # a code the legend does not know


@dataclasses.dataclass(frozen=True)
class LegendClass:
    code: int
    name: str
    color: tuple[int, int, int]
    globeland30: int | None  # None: known ground that never counts (ocean)


@dataclasses.dataclass(frozen=True)
class Legend:
    """One product's codes, names, official colours and GlobeLand30 mapping."""

    name: str
    product: str
    classes: tuple[LegendClass, ...]
    nodata: tuple[int, ...]
    source: str

    @classmethod
    def load(cls, name_or_path: str) -> Legend:
        path = resolve("legends", name_or_path)
        doc = load_yaml(path)
        try:
            classes = tuple(_legend_class(c) for c in doc["classes"])
            nodata = tuple(int(v) for v in doc.get("nodata", []))
            product = str(doc["product"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(path, f"not a legend file ({e!r})") from None
        codes = [c.code for c in classes]
        if len(set(codes)) != len(codes):
            raise InputError(path, "legend lists a code twice")
        known = dict(GLOBELAND30_CLASSES)
        bad = sorted({c.globeland30 for c in classes if c.globeland30 is not None} - set(known))
        if bad:
            raise InputError(path, f"maps onto codes that are not GlobeLand30 classes: {bad}")
        return cls(path.stem, product, classes, nodata, str(path))

    @property
    def fingerprint(self) -> str:
        """Content hash, so a label set notices an edited legend."""
        doc = [dataclasses.astuple(c) for c in self.classes], self.nodata
        return hashlib.sha1(json.dumps(doc).encode()).hexdigest()[:12]

    def colors(self) -> dict[int, tuple[int, int, int]]:
        return {c.code: c.color for c in self.classes}

    def lut(self, class_codes: Sequence[int], size: int = 256) -> np.ndarray:
        """code → class index in ``class_codes``; NOT_COUNTED or UNKNOWN otherwise."""
        size = max(size, max((c.code for c in self.classes), default=0) + 1)
        table = np.full(size, UNKNOWN, dtype=np.int16)
        order = {code: i for i, code in enumerate(class_codes)}
        for c in self.classes:
            target = NOT_COUNTED if c.globeland30 is None else order.get(c.globeland30, NOT_COUNTED)
            table[c.code] = target
        for v in self.nodata:
            if 0 <= v < size:
                table[v] = NOT_COUNTED
        return table


def _legend_class(doc: dict[str, object]) -> LegendClass:
    color = tuple(int(v) for v in doc["color"])  # type: ignore[attr-defined]
    if len(color) != 3 or not all(0 <= v <= 255 for v in color):
        raise ValueError(f"colour of code {doc['code']} is not an RGB triple")
    target = doc.get("globeland30")
    return LegendClass(
        code=int(doc["code"]),  # type: ignore[call-overload]
        name=str(doc["name"]),
        color=(color[0], color[1], color[2]),
        globeland30=None if target is None else int(target),  # type: ignore[call-overload]
    )


def class_set(spec: str | Iterable[int]) -> tuple[tuple[int, str], ...]:
    """``paper`` (8 classes), ``all`` (10), or GlobeLand30 codes such as ``10,20,60``."""
    names = dict(GLOBELAND30_CLASSES)
    if isinstance(spec, str):
        if spec == "paper":
            codes: list[int] = list(PAPER_CODES)
        elif spec == "all":
            codes = list(names)
        else:
            try:
                codes = [int(v) for v in spec.split(",") if v.strip()]
            except ValueError:
                raise InputError(spec, "--classes is paper, all or comma-separated codes") from None
    else:
        codes = list(spec)
    unknown = [c for c in codes if c not in names]
    if unknown or not codes or len(set(codes)) != len(codes):
        raise InputError(
            ",".join(map(str, codes)), f"not a set of GlobeLand30 codes (from {list(names)})"
        )
    return tuple((c, names[c]) for c in codes)
