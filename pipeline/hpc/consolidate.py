"""Append the part stores of a job array (``STORE.parts/part-i-of-n.zarr``) into ``STORE``.

Parts go in part order, one commit per part, so the merged store holds the
chips in the order of one run over the sorted scenes.  Each merged part is
recorded as a :class:`~pipeline.store.records.PartRecord`; a rerun skips those, and a
crash mid-part leaves only invisible bytes that the rerun overwrites.  A part
that is missing or unfinished stops the merge there (later parts would land
out of order) and is reported in one line.  Only chips are merged: label the
consolidated store (label sets of part stores are left where they are).
Chips are copied as encoded bytes (see :func:`_append`), never decoded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.errors import InputError
from pipeline.hpc.parts import Part, find_part_stores, parts_dir
from pipeline.report import RunReport
from pipeline.store.chips import VECTOR_CHUNK, VECTOR_NAMES, ChipStore, ShardAppender, writer_lock
from pipeline.store.records import PartRecord, RunRecord, known_scenes
from pipeline.store.shards import ChunkRef, ShardLayout, chunk_refs, read_chunks, write_shard


def consolidate(store_path: Path, report: RunReport) -> None:
    """Merge every finished part not merged yet; failures go to ``report``."""
    parts = find_part_stores(store_path)
    if not parts:
        raise InputError(parts_dir(store_path), "no part stores (part-i-of-n.zarr) to consolidate")
    count = _single_count(parts, store_path)
    first = ChipStore.open(next(iter(parts.values())))
    store = ChipStore.open_or_create(store_path, first.chip_size, first.shard_chips)
    with store.lock("geokr-etl consolidate"):
        store.recover()
        done = {r.part for r in store.parts}
        total = sum(ChipStore.open(p).n_chips for q, p in parts.items() if str(q) not in done)
        with tqdm(total=total, unit="chip", desc="consolidate") as bar:
            for index in range(1, count + 1):
                part = Part(index, count)
                if str(part) in done:
                    report.counts["parts_already_merged"] += 1
                    continue
                if not _merge_one(store, part, parts.get(part), report, bar):
                    break


def _single_count(parts: dict[Part, Path], store_path: Path) -> int:
    counts = sorted({p.count for p in parts})
    if len(counts) != 1:
        raise InputError(
            parts_dir(store_path), f"part stores of different splits ({', '.join(map(str, counts))}"
            " parts); remove the stale ones"
        )
    return counts[0]


def _merge_one(
    store: ChipStore, part: Part, path: Path | None, report: RunReport, bar: tqdm
) -> bool:
    """Merge one part; False (after one report line) stops the merge at this part."""
    if path is None:
        report.fail(str(parts_dir(store.path)), f"part {part} missing; later parts wait",
                    "parts_pending")
        return False
    try:
        with writer_lock(path, "geokr-etl consolidate"):
            source = ChipStore.open(path)
            _check_part(source, store, path)
            _append(store, source, part, bar)
    except InputError as e:
        report.fail(e.path, f"{e.reason}; this and later parts not merged", "parts_pending")
        return False
    report.counts["parts_merged"] += 1
    report.counts["chips"] += source.n_chips
    if "labels" in source.group:
        report.counts["part_label_sets_not_merged"] += 1
        print(f"warning: {path}: its label sets are not merged; label {store.path} itself",
              file=sys.stderr)
    return True


def _check_part(source: ChipStore, store: ChipStore, path: Path) -> None:
    runs = source.runs
    if not runs or not runs[-1].complete:
        raise InputError(path, "its tile run has not finished")
    if source.chip_size != store.chip_size:
        raise InputError(path, f"{source.chip_size} px chips, the store has {store.chip_size} px")
    have = known_scenes(store.scenes)
    twice = [s.path for s in source.scenes if s.key in have]
    if twice:
        raise InputError(path, f"scene {twice[0]} is already in {store.path}")


def _append(store: ChipStore, source: ChipStore, part: Part, bar: tqdm) -> None:
    """Write the part's chips past the store's end, then commit them in one step.

    Chips move as their encoded bytes: shards of the store are assembled from the
    part's inner chunks, so nothing is decoded or re-encoded, and the result is
    byte for byte what one run would have written, wherever the part starts
    within a shard.
    """
    start, scene_base = store.n_chips, len(store.scenes)
    layout = ShardLayout.of(source.path)
    appender = ShardAppender(store, read_chunks)  # entries: bytes, or refs into the part
    if layout.blosc != appender.layout.blosc:
        raise InputError(source.path, "chips encoded with another codec than the store's")
    per, n = layout.shard_chips, source.n_chips
    block = max(per, VECTOR_CHUNK // per * per)  # whole shards, one vector chunk read
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        vectors = {name: source.read(name, slice(lo, hi)) for name in VECTOR_NAMES}
        vectors["chip_scene"] = (vectors["chip_scene"] + scene_base).astype("int32")
        refs = [r for s in range(lo // per, -(-hi // per))
                for r in chunk_refs(layout, s, min(per, n - s * per))]
        appender.append(refs, vectors)
        _write_shards(appender, appender.take_shards())
        bar.update(hi - lo)
    _write_shards(appender, appender.take_shards(partial=True))
    n_runs, scenes = len(store.runs), source.scenes
    appender.commit(
        start + n,
        scenes=[s.shifted(scene_base, start, n_runs) for s in scenes],
        runs=[dataclasses.replace(r, part=str(part)) for r in source.runs],
        parts=[PartRecord(str(part), str(source.path), start, n, len(scenes))],
    )


def _write_shards(appender: ShardAppender, shards: list[tuple[int, list[Any]]]) -> None:
    for shard, entries in shards:
        refs = [e for e in entries if isinstance(e, ChunkRef)]
        read = iter(read_chunks(refs))
        chunks = [e if isinstance(e, bytes) else next(read) for e in entries]
        write_shard(appender.layout, shard, chunks)


@contextlib.contextmanager
def consolidate_report(store_path: Path) -> Iterator[RunReport]:
    """The run report of a consolidation, closed (and stored) however it ends."""
    report = RunReport("consolidate", {"store": str(store_path)})
    try:
        yield report
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        report.finish()
        _store_report(store_path, report)


def _store_report(store_path: Path, report: RunReport) -> None:
    try:
        store = ChipStore.open(store_path, "r+")
    except InputError:
        return
    with store.lock("geokr-etl consolidate"):
        store.append_run(RunRecord.of(report))
