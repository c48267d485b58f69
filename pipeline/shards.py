"""Direct reads of single chips from the store's local shard files.

zarr spends about a millisecond of Python per chunk read; a training batch of
random chips touches one chunk per chip, so that overhead, not decompression,
bounds the data path.  For the layout ``pipeline.store`` writes (a local
directory, ``sharding_indexed`` with the index at the end, inner codecs
``bytes`` + ``blosc``, one chip per inner chunk) this module reads the shard
index once per shard and then each chip with one ``pread`` and one Blosc
decode.  Any other layout returns ``None`` from :func:`open_shards` and the
caller keeps using zarr.  Tests compare every chip against zarr's own read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numcodecs import Blosc

from pipeline.errors import InputError

EMPTY = np.uint64(2**64 - 1)
CRC_BYTES = 4
BLOSC_HEADER = 16  # bytes 12-16 hold the compressed size


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
            size = os.fstat(fd).st_size
            if size < self.index_bytes:
                os.close(fd)
                raise self._corrupt(shard, f"{size} bytes, shorter than its index")
            raw = os.pread(fd, self.index_bytes, size - self.index_bytes)
            table = np.frombuffer(raw[: self.shard_chips * 16], "<u8").reshape(-1, 2)
            offset, nbytes = table[table[:, 0] != EMPTY].T
            limit = np.uint64(size - self.index_bytes)
            if ((offset > limit) | (nbytes > limit - np.minimum(offset, limit))).any():
                os.close(fd)
                raise self._corrupt(shard, "its index points past the end of the file")
            self._index[shard] = table
            self._fds[shard] = fd
        index = self._index[shard]
        return None if index is None else (self._fds[shard], index)

    def _corrupt(self, shard: int, why: str) -> InputError:
        """One line naming the shard file and the chips it holds (a rerun of tile cannot
        repair committed chips: restore the store from a copy, or tile into a new one)."""
        lo = shard * self.shard_chips
        return InputError(self._shard_path(shard),
                          f"corrupt shard (chips {lo}-{lo + self.shard_chips - 1}): {why}")

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
