"""Locate and read the data files in ``catalogs/`` (sensors, legends, clusters)."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError


def catalog_dir() -> Path:
    """``$GEOKR_CATALOGS`` if set, else the installed ``catalogs`` package (package data
    of the wheel; the repository's ``catalogs/`` in an editable install or a checkout)."""
    env = os.environ.get("GEOKR_CATALOGS")
    if env:
        return Path(env)
    try:
        installed = Path(str(importlib.resources.files("catalogs")))
    except ModuleNotFoundError:  # an editable install made before catalogs was a package
        installed = None
    if installed is not None and (installed / "sensors").is_dir():
        return installed
    return Path(__file__).resolve().parents[1] / "catalogs"


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise InputError(path, f"not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise InputError(path, "expected a mapping at the top level")
    return doc


def entries(kind: str) -> dict[str, Path]:
    """Name → file for every ``catalogs/<kind>/*.yaml``."""
    return {p.stem: p for p in sorted((catalog_dir() / kind).glob("*.yaml"))}


def resolve(kind: str, name_or_path: str) -> Path:
    """A catalog entry by name, or a user's own file by path."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} and p.is_file():
        return p
    known = entries(kind)
    if name_or_path in known:
        return known[name_or_path]
    raise InputError(
        name_or_path,
        f"no such {kind} entry; known: {', '.join(known) or 'none'} (or give a .yaml path)",
    )
