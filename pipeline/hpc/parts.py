"""``--part i/n``: one task of a plain job array takes a disjoint, deterministic share of scenes.

For sites that forbid a long-lived scheduler: each array task runs the normal
stage on its share into its own part store, and ``geokr-etl consolidate``
appends the part stores in part order.  Shares are contiguous blocks of the
scenes in the one canonical order every way of building a store uses (the
``--scenes`` arguments in the order given, each folder or glob expanded in
sorted order, duplicates dropped): every task of an array runs the same
command line, so consolidating in part order gives the chips in the same
order as one run, wherever the files sit on disk.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import click

_PART = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_PART_STORE = re.compile(r"^part-(\d+)-of-(\d+)\.zarr$")
T = TypeVar("T", str, Path)


@dataclasses.dataclass(frozen=True, order=True)
class Part:
    """Part ``index`` (1-based, as SLURM ``--array=1-n`` counts) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"part {self.index}/{self.count}: need 1 <= i <= n")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def bounds(self, total: int) -> tuple[int, int]:
        """``[start, stop)`` of this part among ``total`` sorted items."""
        return (self.index - 1) * total // self.count, self.index * total // self.count


def parse_part(text: str) -> Part:
    """``"3/8"`` → ``Part(3, 8)``; ValueError with the reason otherwise."""
    m = _PART.match(text)
    if not m:
        raise ValueError(f"part {text!r} is not i/n (e.g. 3/8, or $SLURM_ARRAY_TASK_ID/8)")
    return Part(int(m.group(1)), int(m.group(2)))


def select_part(items: Sequence[T], part: Part | None) -> list[T]:
    """This part's share of ``items``, a contiguous block in their order (duplicates
    dropped); all of them when ``part`` is None."""
    ordered = list(dict.fromkeys(items))
    if part is None:
        return ordered
    start, stop = part.bounds(len(ordered))
    return ordered[start:stop]


def parts_dir(store: Path) -> Path:
    """Where the part stores of ``store`` live: ``STORE.parts/`` beside it."""
    return store.parent / f"{store.name}.parts"


def part_store_path(store: Path, part: Part) -> Path:
    """``STORE.parts/part-i-of-n.zarr``: what ``--part i/n`` writes instead of ``STORE``."""
    return parts_dir(store) / f"part-{part.index}-of-{part.count}.zarr"


def find_part_stores(store: Path) -> dict[Part, Path]:
    """Part stores present beside ``store``, by part."""
    found: dict[Part, Path] = {}
    folder = parts_dir(store)
    if not folder.is_dir():
        return found
    for p in folder.iterdir():
        m = _PART_STORE.match(p.name)
        if m and 1 <= int(m.group(1)) <= int(m.group(2)):
            found[Part(int(m.group(1)), int(m.group(2)))] = p
    return dict(sorted(found.items()))


class PartType(click.ParamType):
    """Click parameter type for ``--part i/n``."""

    name = "i/n"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Part:
        if isinstance(value, Part):
            return value
        try:
            return parse_part(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)
