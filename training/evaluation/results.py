"""The resumable results file: JSON lines, one record per finished (init, fraction, repeat).

The file is the only resume state: a rerun reads it and skips every cell whose record
carries the same configuration fingerprint, so an interrupted evaluation continues
where it stopped and a changed configuration is never mixed with an old one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import NonFiniteError


def fingerprint(parameters: dict[str, Any]) -> str:
    """Stable short hash of everything that changes a cell's result."""
    blob = json.dumps(parameters, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def files_fingerprint(root: Path, files: list[Path]) -> str:
    """Names and sizes of the input files: moving the data keeps finished cells valid."""
    return fingerprint({"files": sorted((str(p.relative_to(root)), p.stat().st_size)
                                        for p in files)})


def per_class_json(values: np.ndarray) -> list[float | None]:
    """Per-class scores for the record; null (not NaN, which JSON lacks) for absent classes."""
    return [round(float(v), 6) if np.isfinite(v) else None for v in values]


def cell_key(init: str, fraction: float, repeat: int, fp: str) -> tuple[str, float, int, str]:
    return (init, round(float(fraction), 6), int(repeat), fp)


class ResultsFile:
    """Append-only JSON lines; a torn last line (a killed run) is reported and ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._done: set[tuple[str, float, int, str]] = set()
        if path.exists():
            self._load()

    def _load(self) -> None:
        for lineno, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = cell_key(record["init"], record["fraction"], record["repeat"],
                               record["fingerprint"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                print(f"warning: {self.path}:{lineno}: unreadable record ignored",
                      file=sys.stderr)
                continue
            self.records.append(record)
            self._done.add(key)

    def done(self, key: tuple[str, float, int, str]) -> bool:
        return key in self._done

    def add(self, record: dict[str, Any]) -> None:
        """Append one record durably before the next cell starts; never a NaN (not JSON)."""
        score = record.get("score")
        if not isinstance(score, int | float) or not math.isfinite(score):
            raise NonFiniteError(
                f"{self.path}: cell {record.get('init')} at fraction {record.get('fraction')}, "
                f"repeat {record.get('repeat')} scored {score}; not recorded")
        line = json.dumps(record, sort_keys=True, allow_nan=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)
        self._done.add(cell_key(record["init"], record["fraction"], record["repeat"],
                                record["fingerprint"]))

    def current(self, fingerprints: dict[str, str]) -> list[dict[str, Any]]:
        """Records of this configuration: the init's name and fingerprint both match."""
        return [r for r in self.records if fingerprints.get(r["init"]) == r["fingerprint"]]
