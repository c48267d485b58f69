"""The chip store: the one contract between tiling, labelling and training.

Layout (Zarr v3, dimension names set so ``xarray.open_zarr`` works)::

    chips                 uint8   (N, 3, S, S)  sharded, one chip per inner chunk
                                                (pipeline.store.shards reads it without zarr)
    chip_scene            int32   (N,)
    chip_window           int32   (N, 4)        row_off, col_off, height, width
    chip_transform        float64 (N, 6)        GDAL geotransform in the scene CRS
    chip_bounds_wgs84     float64 (N, 4)        west, south, east, north
    chip_cloud_fraction   float32 (N,)
    chip_nodata_fraction  float32 (N,)
    attrs["geokr"]        metadata: see :func:`new_metadata`

Commit protocol: chip data is first written *past* the visible end of every
array (invisible to readers), then the arrays are resized and finally
``attrs["geokr"]["n_chips"]`` and the scene table are updated in one atomic
write.  ``n_chips`` is the commit point; a crash before it leaves only
invisible bytes that the next writer overwrites.

Writers: one run holds the store's lock.  Its driver decides which encoded
chunk becomes which chip (:class:`ShardAppender`) and writes only the per-chip
vectors and the metadata; shard files are assembled from encoded chunks by
whoever the driver hands a whole shard to (tile: the dask workers), so no two
tasks ever write the same shard at once.  :class:`ChipWriter` is the simple
in-process writer for chips already in memory.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.array import AsyncArray

from pipeline.errors import InputError
from pipeline.store.records import (
    PartRecord,
    RunRecord,
    SceneRecord,
    append_run,
    append_scenes,
)
from pipeline.store.shards import ChunkRef, ShardLayout, chunk_refs

if TYPE_CHECKING:  # the trainer reads stores without importing rasterio
    from rasterio.windows import Window

SCHEMA_VERSION = 1
META_KEY = "geokr"
PARTS_KEY = "consolidated"  # the merged parts of a job array (:class:`PartRecord`)
LOCK_GROUP = ".geokr_writer"  # the writer lock: an empty zarr group, so zarr readers see no junk
LEGACY_LOCK = ".geokr.lock"  # the lock file of stores written before


def lock_file(path: Path) -> Path:
    """The writer lock's file; it names the holding process, so it is unique to a run."""
    return path / LOCK_GROUP / "zarr.json"


_LOCK_BYTES = 1024
DEFAULT_SHARD_CHIPS = 256
VECTOR_CHUNK = 65536


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """Dtype, trailing shape and dimension names of one per-chip array."""

    dtype: str
    tail: tuple[int, ...]
    dims: tuple[str, ...]


def chip_specs(chip_size: int) -> dict[str, ArraySpec]:
    s = chip_size
    return {
        "chips": ArraySpec("uint8", (3, s, s), ("chip", "band", "y", "x")),
        "chip_scene": ArraySpec("int32", (), ("chip",)),
        "chip_window": ArraySpec("int32", (4,), ("chip", "window_field")),
        "chip_transform": ArraySpec("float64", (6,), ("chip", "geotransform")),
        "chip_bounds_wgs84": ArraySpec("float64", (4,), ("chip", "bound")),
        "chip_cloud_fraction": ArraySpec("float32", (), ("chip",)),
        "chip_nodata_fraction": ArraySpec("float32", (), ("chip",)),
    }


def window_rows(windows: Sequence[Window]) -> np.ndarray:
    """``chip_window`` rows of pixel windows: the store's field order lives here only."""
    return np.array(
        [(int(w.row_off), int(w.col_off), int(w.height), int(w.width)) for w in windows],
        np.int32,
    ).reshape(-1, 4)


@dataclasses.dataclass
class ChipBatch:
    """Kept chips of one piece of work, in store order."""

    chips: np.ndarray  # (n, 3, S, S) uint8
    chip_scene: np.ndarray  # (n,) int32
    chip_window: np.ndarray  # (n, 4) int32
    chip_transform: np.ndarray  # (n, 6) float64
    chip_bounds_wgs84: np.ndarray  # (n, 4) float64
    chip_cloud_fraction: np.ndarray  # (n,) float32
    chip_nodata_fraction: np.ndarray  # (n,) float32

    def __len__(self) -> int:
        return int(self.chips.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def empty(cls, chip_size: int) -> ChipBatch:
        specs = chip_specs(chip_size)
        return cls(**{k: np.zeros((0, *v.tail), v.dtype) for k, v in specs.items()})

    @classmethod
    def concat(cls, batches: list[ChipBatch], chip_size: int) -> ChipBatch:
        if not batches:
            return cls.empty(chip_size)
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: np.concatenate([getattr(b, n) for b in batches]) for n in names})


def new_metadata(chip_size: int, shard_chips: int) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "chip_size": chip_size,
        "shard_chips": shard_chips,
        "n_chips": 0,
        "scenes": [],
        "runs": [],
    }


def is_store(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return doc.get("node_type") == "group" and META_KEY in doc.get("attributes", {})


class ChipStore:
    """A chip store opened for reading or for the single writer of a run."""

    def __init__(self, path: Path, group: zarr.Group) -> None:
        self.path = path
        self.group = group

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, mode: Literal["r", "r+"] = "r") -> ChipStore:
        """Open an existing store (``mode`` "r" or "r+")."""
        p = Path(path)
        if not p.exists():
            raise InputError(p, "store does not exist")
        if not is_store(p):
            raise InputError(p, "not a GeoKR chip store (no zarr group with geokr metadata)")
        group = zarr.open_group(str(p), mode=mode, zarr_format=3)
        store = cls(p, group)
        version = store.meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InputError(
                p, f"store schema version {version}, this software reads {SCHEMA_VERSION}"
            )
        store.check_arrays()
        return store

    def check_arrays(self) -> None:
        """Every per-chip array opens, and holds the committed chips: a damaged
        ``<array>/zarr.json`` is one line naming it, not a traceback from deep in zarr."""
        n = self.n_chips
        for name in chip_specs(self.chip_size):
            where = self.path / name / "zarr.json"
            try:
                arr = self.group[name]
            except Exception as e:  # zarr raises many types on a damaged document
                raise InputError(where, f"corrupt array metadata ({_first_line(e)}); "
                                 f"the {n} committed chips cannot be read") from None
            if not isinstance(arr, zarr.Array) or arr.shape[0] < n:
                raise InputError(where, f"array does not hold the {n} committed chips")

    @classmethod
    def create(
        cls, path: str | Path, chip_size: int, shard_chips: int = DEFAULT_SHARD_CHIPS
    ) -> ChipStore:
        """Build the empty store beside its final path and rename it in one step."""
        p = Path(path)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise InputError(p, "path exists and is not a GeoKR chip store")
        tmp = p.with_name(f".{p.name}.creating-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for name, spec in chip_specs(chip_size).items():
            _create_chip_array(group, name, spec, chip_size, shard_chips)
        group.attrs[META_KEY] = new_metadata(chip_size, shard_chips)
        if p.exists():
            p.rmdir()
        tmp.rename(p)
        return cls(p, zarr.open_group(str(p), mode="r+", zarr_format=3))

    @classmethod
    def open_or_create(
        cls, path: str | Path, chip_size: int, shard_chips: int = DEFAULT_SHARD_CHIPS
    ) -> ChipStore:
        p = Path(path)
        if p.exists() and is_store(p):
            store = cls.open(p, "r+")
            if store.chip_size != chip_size:
                raise InputError(
                    p, f"store holds {store.chip_size} px chips, asked for {chip_size} px"
                )
            return store
        return cls.create(p, chip_size, shard_chips)

    # -- metadata ----------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """A copy of the raw metadata document; extend it through :meth:`commit` and
        :meth:`append_run`, never by writing it back."""
        return dict(self.group.attrs[META_KEY])  # type: ignore[arg-type]

    def _write_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace the metadata in one atomic write (the commit point)."""
        self.group.attrs[META_KEY] = json.loads(json.dumps(meta))

    @property
    def n_chips(self) -> int:
        return int(self.meta["n_chips"])

    @property
    def chip_size(self) -> int:
        return int(self.meta["chip_size"])

    @property
    def shard_chips(self) -> int:
        return int(self.meta["shard_chips"])

    @property
    def scenes(self) -> list[SceneRecord]:
        return [SceneRecord.from_dict(s) for s in self.meta["scenes"]]

    @property
    def runs(self) -> list[RunRecord]:
        return [RunRecord.from_dict(r) for r in self.meta["runs"]]

    @property
    def parts(self) -> list[PartRecord]:
        """The part stores of a job array merged into this one, in merge order."""
        return [PartRecord.from_dict(p) for p in self.meta.get(PARTS_KEY, [])]

    def append_run(self, run: RunRecord) -> None:
        """Log one run (the caller holds the lock)."""
        self._write_meta(append_run(self.meta, run))

    def array(self, name: str) -> zarr.Array:
        arr = self.group[name]
        assert isinstance(arr, zarr.Array)
        return arr

    def read(self, name: str, sel: Any = slice(None)) -> np.ndarray:
        """Read a committed per-chip array (never past ``n_chips``)."""
        arr = self.array(name)
        if isinstance(sel, slice) and sel == slice(None):
            sel = slice(0, self.n_chips)
        return np.asarray(arr[sel])

    # -- writing -----------------------------------------------------------
    def writer(self) -> ChipWriter:
        return ChipWriter(self)

    def commit(
        self, end: int, scenes: Sequence[SceneRecord] = (), runs: Sequence[RunRecord] = (),
        parts: Sequence[PartRecord] = (),
    ) -> None:
        """Make chips ``[0, end)`` visible with the records of what they came from, in
        one metadata write (``n_chips = end``)."""
        for name in chip_specs(self.chip_size):
            arr = self.array(name)
            if arr.shape[0] != end:
                arr.resize((end, *arr.shape[1:]))
        meta = append_run(append_scenes(self.meta, scenes), *runs)
        if parts:
            meta[PARTS_KEY] = [*meta.get(PARTS_KEY, []), *(p.to_dict() for p in parts)]
        self._write_meta({**meta, "n_chips": end})

    def recover(self) -> None:
        """Shrink arrays left longer than ``n_chips`` by a crash between resize and commit."""
        n = self.n_chips
        for name in chip_specs(self.chip_size):
            arr = self.array(name)
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))

    @contextmanager
    def lock(self, what: str) -> Iterator[None]:
        """Refuse a second writer; the OS drops the lock if the holder dies."""
        with writer_lock(self.path, what):
            yield


class ChipWriter:
    """Appends past the visible end, a whole shard at a time.

    Writing part of a shard rewrites all of it, so chips are buffered until a
    shard boundary; :meth:`flush` writes the remainder just before a commit.
    """

    def __init__(self, store: ChipStore) -> None:
        self.store = store
        self.written = store.n_chips  # everything below is on disk
        self.pending: list[ChipBatch] = []
        self.shard = store.shard_chips

    @property
    def end(self) -> int:
        return self.written + sum(len(b) for b in self.pending)

    def append(self, batch: ChipBatch) -> None:
        self.pending.append(batch)
        boundary = (self.end // self.shard) * self.shard
        if boundary > self.written:
            self._write(boundary)

    def rewind(self, end: int) -> None:
        """Forget everything appended past ``end`` (a scene that failed half-way)."""
        if end <= self.written:
            # Chips on disk past ``end`` are invisible and get overwritten.
            self.written, self.pending = end, []
            return
        merged = ChipBatch.concat(self.pending, self.store.chip_size)
        keep = end - self.written
        self.pending = [ChipBatch(**{k: v[:keep] for k, v in merged.arrays().items()})]

    def flush(self) -> int:
        self._write(self.end)
        return self.written

    def _write(self, upto: int) -> None:
        merged = ChipBatch.concat(self.pending, self.store.chip_size)
        n = upto - self.written
        for name, data in merged.arrays().items():
            _write_beyond(self.store.array(name), self.written, data[:n])
        self.pending = [ChipBatch(**{k: v[n:] for k, v in merged.arrays().items()})]
        self.written = upto


VECTOR_NAMES = tuple(n for n in chip_specs(1) if n != "chips")


class ShardAppender:
    """The driver's book of an append: which encoded chunk becomes which chip.

    Holds one entry per chip (a handle on its encoded bytes, never the pixels:
    what an entry is belongs to the caller) from the first chip of the last,
    partial shard on, and the per-chip vectors since the commit point.  Whole
    shards are handed out by :meth:`take_shards`; :meth:`commit` writes the
    vectors and publishes.  ``tail`` turns the committed chips of a partial last
    shard into entries, because that shard file is rewritten as it grows.
    """

    def __init__(self, store: ChipStore, tail: Callable[[list[ChunkRef]], list[Any]]) -> None:
        self.store = store
        self.layout = ShardLayout.of(store.path)
        self.committed = store.n_chips
        per = self.layout.shard_chips
        self.base = self.committed // per * per
        refs = chunk_refs(self.layout, self.base // per, self.committed - self.base)
        self.entries: list[Any] = tail(refs) if refs else []
        self.vectors: dict[str, list[np.ndarray]] = {n: [] for n in VECTOR_NAMES}
        self.handed = self.base  # chips below are in shards already handed out
        self.released = self.base  # entries below are dropped already

    @property
    def end(self) -> int:
        return self.base + len(self.entries)

    def append(self, entries: list[Any], vectors: Mapping[str, np.ndarray]) -> None:
        self.entries.extend(entries)
        for name in VECTOR_NAMES:
            self.vectors[name].append(vectors[name])

    def rewind(self, end: int) -> None:
        """Forget chips from ``end`` on (a scene that failed half-way); ``end`` ≥ the commit."""
        assert end >= self.committed, "committed chips are never rewound"
        del self.entries[end - self.base :]
        for name in VECTOR_NAMES:
            self.vectors[name] = [self._merged(name)[: end - self.committed]]
        per = self.layout.shard_chips
        self.handed = min(self.handed, end // per * per)

    def take_shards(self, partial: bool = False) -> list[tuple[int, list[Any]]]:
        """Shards not handed out yet whose chips are all known (and the last, partial one)."""
        per = self.layout.shard_chips
        stop = self.end if partial else self.end // per * per
        out = [
            (lo // per, self.entries[lo - self.base : min(lo + per, stop) - self.base])
            for lo in range(self.handed, stop, per)
        ]
        self.handed = max(self.handed, stop // per * per)
        return out

    def release(self, keep_from: int) -> None:
        """Drop the entries of handed-out shards wholly before chip ``keep_from`` (nothing
        can rewind there any more), so what they hold can be freed before the commit."""
        per = self.layout.shard_chips
        stop = min(keep_from, self.handed) // per * per
        for i in range(max(self.released, self.base), stop):
            self.entries[i - self.base] = None
        self.released = max(self.released, stop)

    def commit(
        self, end: int, scenes: Sequence[SceneRecord] = (), runs: Sequence[RunRecord] = (),
        parts: Sequence[PartRecord] = (),
    ) -> None:
        """Publish chips ``[0, end)`` (see :meth:`ChipStore.commit`); their shards must be
        on disk already."""
        n = end - self.committed
        for name in VECTOR_NAMES:
            merged = self._merged(name)
            _write_beyond(self.store.array(name), self.committed, merged[:n])
            self.vectors[name] = [merged[n:]]
        self.store.commit(end, scenes, runs, parts)
        self.committed = end
        per = self.layout.shard_chips
        final = min(end, self.handed) // per * per  # whole shards, committed: done with them
        del self.entries[: final - self.base]
        self.base = final

    def _merged(self, name: str) -> np.ndarray:
        spec = chip_specs(1)[name]
        return np.concatenate([np.zeros((0, *spec.tail), spec.dtype), *self.vectors[name]])


@contextmanager
def writer_lock(path: Path, what: str) -> Iterator[None]:
    """An OS lock on ``STORE/.geokr_writer/zarr.json``, released if the holder dies.

    The file is a valid (fixed-size, whitespace-padded) zarr group document that
    names the holder, so plain ``zarr.open_group`` readers see a member, not junk.
    """
    path.mkdir(parents=True, exist_ok=True)
    try:
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "no write permission", str(path))
        (path / LOCK_GROUP).mkdir(exist_ok=True)
        fd = os.open(lock_file(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise InputError(path, f"store is read-only ({e.strerror}); tile, label and "
                             "consolidate write into it (stats only reads)") from None
        raise
    try:
        _flock(fd, path)
        _release_legacy_lock(path)
        os.pwrite(fd, _lock_document(f"{what} (pid {os.getpid()} on {socket.gethostname()})"), 0)
        yield
    finally:
        os.close(fd)


def _flock(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InputError(path, f"store is being written by {_holder(fd)}; wait for it") from None


def _lock_document(holder: str) -> bytes:
    doc = json.dumps({"zarr_format": 3, "node_type": "group",
                      "attributes": {"geokr_writer": holder[: _LOCK_BYTES - 200]}})
    return doc.encode().ljust(_LOCK_BYTES)


def _holder(fd: int) -> str:
    try:
        return str(json.loads(os.pread(fd, _LOCK_BYTES, 0))["attributes"]["geokr_writer"])
    except (ValueError, KeyError, TypeError):
        return "another process"


def _release_legacy_lock(path: Path) -> None:
    """A store written before keeps its lock file: take it too (an older writer may hold
    it), then remove it."""
    legacy = path / LEGACY_LOCK
    if not legacy.is_file():
        return
    fd = os.open(legacy, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise InputError(path, f"store is being written by {holder}; wait for it") from None
        legacy.unlink()
    finally:
        os.close(fd)


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _create_chip_array(
    group: zarr.Group, name: str, spec: ArraySpec, chip_size: int, shard_chips: int
) -> None:
    if name == "chips":
        chunks: tuple[int, ...] = (1, 3, chip_size, chip_size)
        shards: tuple[int, ...] | None = (shard_chips, 3, chip_size, chip_size)
        compressors: Any = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
    else:
        chunks = (VECTOR_CHUNK, *spec.tail)
        shards = None
        compressors = "auto"
    group.create_array(
        name,
        shape=(0, *spec.tail),
        dtype=spec.dtype,
        chunks=chunks,
        shards=shards,
        compressors=compressors,
        fill_value=0,
        dimension_names=spec.dims,
    )


def _write_beyond(arr: zarr.Array, offset: int, data: np.ndarray) -> None:
    """Write rows ``[offset, offset+len)`` without publishing a new shape.

    A throw-away array object with a longer shape shares the store path, so
    the chunks land in place while the stored metadata keeps the old shape.
    """
    if len(data) == 0:
        return
    end = offset + len(data)
    async_arr = arr._async_array
    meta = async_arr.metadata.update_shape((max(end, arr.shape[0]), *arr.shape[1:]))
    phantom = zarr.Array(AsyncArray(meta, async_arr.store_path, async_arr.config))
    phantom[offset:end] = data
