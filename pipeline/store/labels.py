"""Label sets: ``labels/<name>/`` groups in the chip store, one per product/edition.

Arrays are sized to the store's chip count up front; ``attrs["geokr_labels"]
["n_chips"]`` is the commit point, exactly like the store's own ``n_chips``.
Readers use rows ``[0, n_chips)`` only; a set whose ``n_chips`` is below the
store's is stale and the next ``geokr-etl label`` run completes it.
:class:`LabelSet` is the handle (the label stage writes through it);
:class:`LabelView` is what readers get from :meth:`LabelSet.view`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from pipeline.errors import InputError
from pipeline.store.chips import VECTOR_CHUNK, ChipStore
from pipeline.store.records import RunRecord, append_run

GROUP = "labels"
ATTR = "geokr_labels"
ARRAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "proportions": ("float32", ("chip", "class")),
    "labeled_fraction": ("float32", ("chip",)),
    "valid": ("bool", ("chip",)),
    "dominant": ("int16", ("chip",)),
    "sample_weight": ("float32", ("chip",)),
}


def label_names(store: ChipStore) -> list[str]:
    """Label sets that committed a chip: a set whose first run failed or was killed
    before its first commit holds nothing and must not pass for one."""
    if GROUP not in store.group:
        return []
    group = store.group[GROUP]
    assert isinstance(group, zarr.Group)
    sets = {k: v.attrs[ATTR] for k, v in group.members()
            if isinstance(v, zarr.Group) and ATTR in v.attrs}
    return sorted(k for k, doc in sets.items()
                  if isinstance(doc, dict) and doc.get("n_chips", 0) > 0)


class LabelSet:
    """One label set opened by the run's single writer (or read-only)."""

    def __init__(self, store: ChipStore, name: str, group: zarr.Group) -> None:
        self.store = store
        self.name = name
        self.group = group

    @property
    def where(self) -> str:
        return f"{self.store.path}/{GROUP}/{self.name}"

    @property
    def header(self) -> dict[str, Any]:
        return dict(self.group.attrs[ATTR])  # type: ignore[arg-type]

    @property
    def n_chips(self) -> int:
        return int(self.header["n_chips"])

    @property
    def classes(self) -> list[tuple[int, str]]:
        return [(int(c), str(n)) for c, n in self.header["classes"]]

    @classmethod
    def open(cls, store: ChipStore, name: str, names: list[str] | None = None) -> LabelSet:
        """Open a committed set (``names``: :func:`label_names`, when the caller has them)."""
        names = label_names(store) if names is None else names
        if name not in names:
            have = ", ".join(names) or "none"
            raise InputError(store.path / GROUP / name,
                             f"no label set {name!r} in store (available: {have})")
        group = store.group[f"{GROUP}/{name}"]
        assert isinstance(group, zarr.Group)
        return cls(store, name, group)

    @classmethod
    def open_or_create(cls, store: ChipStore, name: str, header: Mapping[str, Any]) -> LabelSet:
        """Open ``name`` if it was made with the same parameters, else create it.

        A set that never committed a chip (its first run failed) is replaced.
        """
        names = label_names(store)
        if name in names:
            labels = cls.open(store, name, names)
            _check_same(labels, header)
            return labels
        root = store.group.require_group(GROUP)
        group = root.create_group(name, overwrite=True)
        k = len(header["classes"])
        for arr, (dtype, dims) in ARRAYS.items():
            tail = (k,) if arr == "proportions" else ()
            group.create_array(
                arr, shape=(0, *tail), dtype=dtype, chunks=(VECTOR_CHUNK, *tail),
                fill_value=False if dtype == "bool" else 0, dimension_names=dims,
            )
        doc = {**json.loads(json.dumps(dict(header))), "n_chips": 0, "tiles": [], "runs": []}
        group.attrs[ATTR] = doc
        return cls(store, name, group)

    def view(self, n_chips: int, require_valid: bool = True) -> LabelView:
        """The committed rows below ``n_chips`` (the store's), checked, read-only;
        ``require_valid``: a set with no valid chip is an input error (training)."""
        n = min(self.n_chips, n_chips)
        try:
            props = self.read("proportions")[:n].astype(np.float32)
            valid = self.read("valid")[:n].astype(bool)
            weight = self.read("sample_weight")[:n].astype(np.float64)
            dominant = self.read("dominant")[:n].astype(np.int64)
        except KeyError as exc:
            raise InputError(self.where, f"label set lacks array {exc}") from None
        classes = self.classes
        if props.shape[1:] != (len(classes),):
            raise InputError(self.where,
                             f"proportions have shape {props.shape}, {len(classes)} classes")
        valid &= usable(props, weight)
        if require_valid and not valid.any():
            raise InputError(self.where,
                             "label set marks no chip valid (with a positive sample weight)")
        return LabelView(self.name, classes, props, valid, weight, dominant, n, self.header)

    def remove_if_empty(self) -> None:
        """Delete a set that never committed a chip: it must not pass for a label set."""
        if self.n_chips == 0:
            root = self.store.group[GROUP]
            assert isinstance(root, zarr.Group)
            del root[self.name]

    def array(self, name: str) -> zarr.Array:
        arr = self.group[name]
        assert isinstance(arr, zarr.Array)
        return arr

    def read(self, name: str) -> np.ndarray:
        """A committed array: rows ``[0, n_chips)``."""
        return np.asarray(self.array(name)[: self.n_chips])

    def resize(self, n: int) -> None:
        for name in ARRAYS:
            arr = self.array(name)
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))

    def write_rows(self, lo: int, rows: Mapping[str, np.ndarray]) -> None:
        for name, data in rows.items():
            if len(data):
                self.array(name)[lo : lo + len(data)] = data

    def append_run(self, run: RunRecord) -> None:
        """Log one run in the header (the caller holds the store's lock)."""
        self.group.attrs[ATTR] = append_run(self.header, run)

    def commit(self, n: int, updates: Mapping[str, Any]) -> None:
        """Publish rows ``[0, n)`` with ``updates`` merged into the header, in one write."""
        doc = self.header
        doc.update(json.loads(json.dumps(dict(updates))))
        doc["n_chips"] = n
        self.group.attrs[ATTR] = doc


def usable(proportions: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """The validity rule readers add to the stored ``valid``: finite proportions and a
    finite, positive sampling weight (a damaged or hand-edited set must not train)."""
    finite = np.isfinite(proportions).all(1) & np.isfinite(sample_weight)
    return finite & (sample_weight > 0)


@dataclasses.dataclass(frozen=True)
class LabelView:
    """One committed label set, read whole and cut to the chips it covers."""

    name: str
    classes: list[tuple[int, str]]
    proportions: np.ndarray  # (n, K) float32
    valid: np.ndarray  # (n,) bool: stored validity and :func:`usable`
    sample_weight: np.ndarray  # (n,) float64
    dominant: np.ndarray  # (n,) int64, -1 where invalid
    n_chips: int
    attrs: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return [name for _, name in self.classes]


def _check_same(labels: LabelSet, header: Mapping[str, Any]) -> None:
    keys = ("product", "legend", "classes", "parameters")
    old = {k: labels.header.get(k) for k in keys}
    new = json.loads(json.dumps({k: header[k] for k in keys}))
    for doc in (old, new):  # a legend is the same wherever its file lives
        doc["legend"] = {k: v for k, v in (doc["legend"] or {}).items() if k != "source"}
    diff = [k for k in keys if old.get(k) != new[k]]
    if "parameters" in diff:
        p_old: dict[str, Any] = old.get("parameters") or {}
        p_new: dict[str, Any] = new["parameters"]
        diff.remove("parameters")
        diff += sorted(k for k in set(p_old) | set(p_new) if p_old.get(k) != p_new.get(k))
    if diff:
        raise InputError(
            labels.where,
            f"label set exists with other parameters ({', '.join(diff)} differ); "
            "choose another --name",
        )


def sample_weights(dominant: np.ndarray, valid: np.ndarray, n_classes: int) -> np.ndarray:
    """Class-balanced sampling weights: inverse frequency of the chip's dominant class.

    The paper balances its pre-training set by duplicating chips of rare
    (dominant) classes.  Weighting each valid chip by ``1 / count(dominant)``
    gives every present class the same expected share under a weighted
    sampler, without copying chips; weights are scaled to mean 1 over valid
    chips so they also read as duplication factors.  Invalid chips get 0.
    """
    out = np.zeros(len(dominant), np.float32)
    ok = valid & (dominant >= 0)
    if not ok.any():
        return out
    freq = np.bincount(dominant[ok].astype(np.int64), minlength=n_classes).astype(np.float64)
    present = int((freq > 0).sum())
    with np.errstate(divide="ignore"):
        per_class = np.where(freq > 0, ok.sum() / (present * freq), 0.0)
    out[ok] = per_class[dominant[ok].astype(np.int64)]
    return out
