"""Direct reads of single chips from the store's local shard files.

zarr spends about a millisecond of Python per chunk read; a training batch of
random chips touches one chunk per chip, so that overhead, not decompression,
bounds the data path.  For the layout ``pipeline.store.chips`` writes (a local
directory, ``sharding_indexed`` with the index at the end, inner codecs
``bytes`` + ``blosc``, one chip per inner chunk) this module reads the shard
index once per shard and then each chip with one ``pread`` and one Blosc
decode.  Any other layout returns ``None`` from :func:`open_shards` and the
caller keeps using zarr.  Tests compare every chip against zarr's own read.

The writer side builds whole shard files from already encoded chunks (the
tile workers' output, or another store's shards), byte for byte what zarr
would write, so chips are encoded once, by whoever cut them, and moving them
between stores never decodes them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
from numcodecs import Blosc

from pipeline.errors import InputError

EMPTY = np.uint64(2**64 - 1)
CRC_BYTES = 4
BLOSC_HEADER = 16  # bytes 12-16 hold the compressed size


def corrupt_shard(path: Path, first: int, count: int, why: str) -> InputError:
    """One line naming the shard file and the chips it holds (a rerun of tile cannot
    repair committed chips: restore the store from a copy, or tile into a new one)."""
    return InputError(path, f"corrupt shard (chips {first}-{first + count - 1}): {why}")


def shard_index(fd: int, path: Path, first: int, shard_chips: int, index_bytes: int
                ) -> np.ndarray:
    """The (offset, nbytes) table of an open shard file, checked against its size."""
    size = os.fstat(fd).st_size
    if size < index_bytes:
        raise corrupt_shard(path, first, shard_chips, f"{size} bytes, shorter than its index")
    raw = os.pread(fd, index_bytes, size - index_bytes)
    table = np.frombuffer(raw[: shard_chips * 16], "<u8").reshape(-1, 2)
    offset, nbytes = table[table[:, 0] != EMPTY].T
    limit = np.uint64(size - index_bytes)
    if ((offset > limit) | (nbytes > limit - np.minimum(offset, limit))).any():
        raise corrupt_shard(path, first, shard_chips,
                            "its index points past the end of the file")
    return table


class ShardReader:
    """Chips ``(N, 3, S, S)`` uint8 read straight from local shard files."""

    def __init__(self, array_dir: Path, shape: tuple[int, ...], shard_chips: int,
                 index_crc: bool) -> None:
        self.array_dir = array_dir
        self.chip_shape = shape[1:]
        self.shard_chips = shard_chips
        self.index_bytes = shard_chips * 16 + (CRC_BYTES if index_crc else 0)
        self.blosc = Blosc()
        self._index: dict[int, np.ndarray | None] = {}
        self._fds: dict[int, int] = {}

    def _shard_path(self, shard: int) -> Path:
        return self.array_dir / "c" / str(shard) / "0" / "0" / "0"

    def _open(self, shard: int) -> tuple[int, np.ndarray] | None:
        if shard not in self._index:
            try:
                fd = os.open(self._shard_path(shard), os.O_RDONLY)
            except FileNotFoundError:
                self._index[shard] = None  # an all-fill shard is never written
                return None
            try:
                table = shard_index(fd, self._shard_path(shard), shard * self.shard_chips,
                                    self.shard_chips, self.index_bytes)
            except InputError:
                os.close(fd)
                raise
            self._index[shard] = table
            self._fds[shard] = fd
        index = self._index[shard]
        return None if index is None else (self._fds[shard], index)

    def _corrupt(self, shard: int, why: str) -> InputError:
        lo = shard * self.shard_chips
        return corrupt_shard(self._shard_path(shard), lo, self.shard_chips, why)

    def read_one(self, chip: int, out: np.ndarray) -> None:
        shard, inner = divmod(chip, self.shard_chips)
        opened = self._open(shard)
        if opened is None:
            out[...] = 0
            return
        fd, index = opened
        offset, nbytes = index[inner]
        if offset == EMPTY:
            out[...] = 0
            return
        raw = os.pread(fd, int(nbytes), int(offset))
        if len(raw) < BLOSC_HEADER or int.from_bytes(raw[12:16], "little") != len(raw):
            raise self._corrupt(shard, f"chip {chip} is damaged (its size disagrees)")
        try:
            self.blosc.decode(raw, out=out.reshape(-1))
        except (RuntimeError, ValueError) as e:
            raise self._corrupt(shard, f"chip {chip} cannot be decoded ({e})") from None

    def read(self, chips: np.ndarray) -> np.ndarray:
        out = np.empty((len(chips), *self.chip_shape), np.uint8)
        for i, chip in enumerate(chips.tolist()):
            self.read_one(chip, out[i])
        return out

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._index.clear()

    def __del__(self) -> None:
        self.close()


def open_shards(store_path: Path, name: str = "chips") -> ShardReader | None:
    """A direct reader when the array has exactly the layout this module knows, else None."""
    array_dir = store_path / name
    try:
        meta = json.loads((array_dir / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    spec = _sharding_spec(meta)
    if spec is None:
        return None
    shape = tuple(int(v) for v in meta["shape"])
    return ShardReader(array_dir, shape, spec["shard_chips"], spec["crc"])


def _sharding_spec(meta: dict[str, Any]) -> dict[str, Any] | None:
    codecs = meta.get("codecs", [])
    if meta.get("data_type") != "uint8" or len(codecs) != 1:
        return None
    if codecs[0].get("name") != "sharding_indexed":
        return None
    key = meta.get("chunk_key_encoding", {})
    if key.get("name") != "default" or key.get("configuration", {}).get("separator", "/") != "/":
        return None
    cfg = codecs[0]["configuration"]
    shard_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    inner = [c.get("name") for c in cfg.get("codecs", [])]
    index = [c.get("name") for c in cfg.get("index_codecs", [])]
    ok = (cfg.get("index_location", "end") == "end"
          and cfg["chunk_shape"][0] == 1 and list(cfg["chunk_shape"][1:]) == meta["shape"][1:]
          and list(shard_shape[1:]) == meta["shape"][1:]
          and inner == ["bytes", "blosc"]
          and index in (["bytes"], ["bytes", "crc32c"])
          and all(c.get("configuration", {}).get("endian", "little") == "little"
                  for c in cfg["index_codecs"] if c.get("name") == "bytes"))
    if not ok:
        return None
    return {"shard_chips": int(shard_shape[0]), "crc": index[-1] == "crc32c"}


# -- writer side: shards assembled from encoded chunks, no decode ---------------------------
@dataclasses.dataclass(frozen=True)
class ChunkRef:
    """Where one encoded inner chunk (one chip) lies; ``nbytes == 0``: all fill, not stored."""

    path: str
    offset: int
    nbytes: int


@dataclasses.dataclass(frozen=True)
class ShardLayout:
    """What a writer needs to produce shard files exactly as zarr would."""

    array_dir: str
    shard_chips: int
    index_crc: bool
    blosc: tuple[tuple[str, Any], ...]  # numcodecs Blosc config

    @classmethod
    def of(cls, store_path: Path, name: str = "chips") -> ShardLayout:
        array_dir = store_path / name
        meta = json.loads((array_dir / "zarr.json").read_text())
        spec = _sharding_spec(meta)
        if spec is None:
            raise ValueError(f"{array_dir}: not the sharded layout this module writes")
        blosc = meta["codecs"][0]["configuration"]["codecs"][1]["configuration"]
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[blosc["shuffle"]]
        config = {"cname": blosc["cname"], "clevel": blosc["clevel"], "shuffle": shuffle,
                  "blocksize": blosc["blocksize"], "typesize": blosc.get("typesize", 1)}
        return cls(str(array_dir), spec["shard_chips"], spec["crc"], tuple(sorted(config.items())))

    def shard_path(self, shard: int) -> Path:
        return Path(self.array_dir) / "c" / str(shard) / "0" / "0" / "0"


@functools.lru_cache(maxsize=4)
def _codec(config: tuple[tuple[str, Any], ...]) -> Blosc:
    return Blosc.from_config(dict(config))


def encode_chips(layout: ShardLayout, chips: Iterable[np.ndarray]) -> list[bytes]:
    """Each chip as zarr encodes an inner chunk; b"" for an all-fill chip (zarr skips it)."""
    codec = _codec(layout.blosc)
    return [codec.encode(np.ascontiguousarray(c)) if c.any() else b"" for c in chips]


def chunk_refs(layout: ShardLayout, shard: int, count: int | None = None) -> list[ChunkRef]:
    """The first ``count`` inner chunks of a shard file on disk (all when None)."""
    n = layout.shard_chips if count is None else count
    path = layout.shard_path(shard)
    if not path.exists():
        return [ChunkRef(str(path), 0, 0)] * n
    per = layout.shard_chips
    fd = os.open(path, os.O_RDONLY)
    try:
        index_bytes = per * 16 + (CRC_BYTES if layout.index_crc else 0)
        index = shard_index(fd, path, shard * per, per, index_bytes)[:n]
    finally:
        os.close(fd)
    return [ChunkRef(str(path), 0, 0) if o == EMPTY else ChunkRef(str(path), int(o), int(b))
            for o, b in index]


def write_shard(layout: ShardLayout, shard: int, chunks: list[bytes]) -> None:
    """Write shard ``shard`` from encoded chunks (chip ``shard × shard_chips + i`` is
    ``chunks[i]``, b"" when all fill), byte for byte what zarr writes; atomic (a reader
    sees the old file or the new one)."""
    path = layout.shard_path(shard)
    if not Path(layout.array_dir).is_dir():  # never create a store on a host that cannot see it
        raise FileNotFoundError(f"{layout.array_dir}: not visible from this host")
    sizes = np.array([len(c) for c in chunks], np.uint64)
    if not sizes.any():
        path.unlink(missing_ok=True)
        return
    index = np.full((layout.shard_chips, 2), EMPTY, np.uint64)
    stored = np.flatnonzero(sizes)
    index[stored, 0] = np.concatenate([[0], np.cumsum(sizes[stored])[:-1]])
    index[stored, 1] = sizes[stored]
    raw = index.astype("<u8").tobytes()
    if layout.index_crc:
        raw += np.uint32(google_crc32c.value(raw)).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a process that died here with this id
    _write_new(tmp, [*chunks, raw])
    os.replace(tmp, path)


_IOV_MAX = 1024


def _write_new(path: Path, chunks: list[bytes]) -> None:
    """A new file holding ``chunks`` back to back, written without joining them first."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        pending = [c for c in chunks if c]
        while pending:
            done = os.writev(fd, pending[:_IOV_MAX])
            while pending and done >= len(pending[0]):  # drop what was written
                done -= len(pending[0])
                pending = pending[1:]
            if done:
                pending[0] = pending[0][done:]
    finally:
        os.close(fd)


def read_chunks(refs: list[ChunkRef]) -> list[bytes]:
    """The encoded bytes behind ``refs`` (b"" for all-fill chunks)."""
    chunks: list[bytes] = []
    handles: dict[str, int] = {}
    try:
        for ref in refs:
            if ref.nbytes == 0:
                chunks.append(b"")
                continue
            if ref.path not in handles:
                handles[ref.path] = os.open(ref.path, os.O_RDONLY)
            data = os.pread(handles[ref.path], ref.nbytes, ref.offset)
            if len(data) != ref.nbytes:
                raise InputError(ref.path, f"corrupt shard: {ref.nbytes} bytes at {ref.offset} "
                                 "are not there")
            chunks.append(data)
    finally:
        for fd in handles.values():
            os.close(fd)
    return chunks
