"""``geokr-etl tile``: scenes → chips in the store, dask-parallel below the scene level.

Workers open scenes themselves, cut, filter and encode the chips of one strip
and keep the encoded bytes; only per-chip vectors come back.  The driver puts
chips in input order (scene, then chip row) and hands each whole shard to a
worker, which assembles it from the tasks that hold its chips (dask moves them
between workers, never through the driver or the scheduler).  A killed run
that is rerun gives exactly the chips of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from dask.distributed import Client, Future
from rasterio.crs import CRS
from rasterio.windows import Window
from tqdm import tqdm

from pipeline.cluster import check_workers_see
from pipeline.driver import Committer, ordered_map
from pipeline.errors import InputError
from pipeline.filters import REASONS, ChipStats, FilterParams, strip_stats
from pipeline.geobounds import bounds_wgs84
from pipeline.hpc.parts import Part, part_store_path, select_part
from pipeline.nodata import NodataChoice
from pipeline.radiometry import Stretch, compute_stretch
from pipeline.report import RunReport, sigterm_as_interrupt
from pipeline.scenes import (
    SceneInfo,
    expand_scenes,
    fingerprint,
    inspect_scene,
    missing_reason,
    open_cached,
)
from pipeline.sensors import SensorProfile, all_profiles, load_profile
from pipeline.store.chips import ChipStore, ShardAppender, lock_file, window_rows
from pipeline.store.records import RunRecord, SceneRecord, known_scenes
from pipeline.store.shards import ChunkRef, ShardLayout, encode_chips, read_chunks, write_shard
from pipeline.windows import chip_rows, gdal_transform, strip_window

MIN_CHIPS_PER_PART = 32


@dataclasses.dataclass(frozen=True)
class TileParams:
    chip_size: int = 256
    overlap: float = 0.2
    filters: FilterParams = dataclasses.field(default_factory=FilterParams)
    percentiles: tuple[float, float] = (2.0, 98.0)
    commit_interval: float = 10.0  # seconds between commits of finished scenes
    shard_chips: int = 256
    retries: int = 2  # a task whose worker died (walltime, node failure) runs again
    gdal_cache_mb: int = 256  # GDAL's default (5 % of RAM) grows past a worker's budget
    nodata: NodataChoice | None = None  # --nodata; None: the file's tag, else the profile's

    def to_dict(self) -> dict[str, Any]:
        nodata = None if self.nodata is None else str(self.nodata)
        return dataclasses.asdict(self) | {"nodata": nodata}


@dataclasses.dataclass(frozen=True)
class ScenePlan:
    info: SceneInfo
    stretch: Stretch
    parts: list[list[Window]]

    @property
    def n_windows(self) -> int:
        return sum(len(p) for p in self.parts)


@dataclasses.dataclass
class PartResult:
    vectors: dict[str, np.ndarray]  # per kept chip, store order (chip_scene still unset)
    chunks: list[bytes]  # the kept chips, encoded as the store's inner chunks
    dropped: Counter[str]

    def without_chunks(self) -> PartResult:
        """What the driver needs; the encoded chips stay on the worker."""
        return PartResult(self.vectors, [], self.dropped)


# -- worker side -------------------------------------------------------------
def split_parts(rows: list[list[Window]]) -> list[list[Window]]:
    """Whole chip rows per part, enough chips per part to amortise a task."""
    if not rows:
        return []
    per = max(1, -(-MIN_CHIPS_PER_PART // len(rows[0])))
    return [[w for row in rows[i : i + per] for w in row] for i in range(0, len(rows), per)]


def prepare_scene(
    path: str,
    sensor: SensorProfile | None,
    profiles: list[SensorProfile],
    params: TileParams,
    known_fingerprint: str | None = None,
) -> ScenePlan | InputError:
    """Check the scene, compute its stretch and its chip windows."""
    try:
        info = inspect_scene(path, sensor, profiles, known_fingerprint, params.nodata)
        with rasterio.Env(GDAL_CACHEMAX=params.gdal_cache_mb << 20):
            # this thread's handle: blocks the sample decodes stay cached for its strips
            stretch = compute_stretch(open_cached(path), info.sensor.rgb, params.percentiles,
                                      info.nodata)
        if stretch is None:
            return InputError(path, "all nodata (no valid pixel in the sample)")
        rows = chip_rows(info.height, info.width, params.chip_size, params.overlap)
        if not rows:
            return InputError(
                path,
                f"scene {info.width}×{info.height} px is smaller than one "
                f"{params.chip_size} px chip",
            )
        return ScenePlan(info, stretch, split_parts(rows))
    except InputError as e:
        return e
    except Exception as e:  # a corrupt file can fail in any GDAL call
        return InputError(path, f"cannot read ({type(e).__name__}: {str(e).splitlines()[0]})")


def tile_part(
    info: SceneInfo,
    stretch: Stretch,
    windows: list[Window],
    params: TileParams,
    layout: ShardLayout,
) -> PartResult | InputError:
    """Read one strip of chip rows once; filter and encode its chips."""
    strip = strip_window(windows)
    try:
        with rasterio.Env(GDAL_CACHEMAX=params.gdal_cache_mb << 20):
            src = open_cached(info.path)
            data = src.read(info.sensor.rgb, window=strip)
            valid = info.nodata.valid(src, info.sensor.rgb, strip, data)  # GDAL semantics
    except Exception as e:
        return InputError(info.path, f"read failed at {strip} ({str(e).splitlines()[0]})")
    rgb = _stretched(stretch, data)
    if not valid.all():
        rgb[:, ~valid] = 0
    rows = np.array([int(w.row_off - strip.row_off) for w in windows])
    cols = np.array([int(w.col_off - strip.col_off) for w in windows])
    size = params.chip_size
    stats = strip_stats(rgb, valid, rows, cols, size, params.filters)
    kept = np.flatnonzero(stats.kept)
    dropped = Counter(REASONS[r] for r in stats.reason[stats.reason > 0])
    chips = (rgb[:, rows[i] : rows[i] + size, cols[i] : cols[i] + size] for i in kept)
    vectors = _vectors(info, [windows[i] for i in kept], stats, kept, size)
    return PartResult(vectors, encode_chips(layout, chips), dropped)


def summary(result: PartResult | InputError) -> PartResult | InputError:
    return result if isinstance(result, InputError) else result.without_chunks()


def assemble_shard(
    layout: ShardLayout, shard: int, sources: list[tuple[Any, int, int]]
) -> None:
    """Write a shard from runs ``[lo, hi)`` of encoded chips held by earlier tasks."""
    chunks: list[bytes] = []
    for source, lo, hi in sources:
        chunks.extend((source.chunks if isinstance(source, PartResult) else source)[lo:hi])
    write_shard(layout, shard, chunks)


def _stretched(stretch: Stretch, data: np.ndarray, block_rows: int = 8) -> np.ndarray:
    """``stretch.apply(data)``; 16-bit strips go through its lookup tables a block of rows
    at a time, so input and output stay in cache (about twice as fast on a long strip).

    ``mode="clip"`` skips numpy's per-element bounds check (a third faster): a uint16
    code always lies inside a 65 536-entry table, so nothing is ever clipped.
    """
    if stretch.low is None or data.dtype != np.uint16:
        return stretch.apply(data)
    luts = stretch.lookup_tables()
    out = np.empty(data.shape, np.uint8)
    for r in range(0, data.shape[1], block_rows):
        for b in range(len(data)):
            np.take(luts[b], data[b, r : r + block_rows], out=out[b, r : r + block_rows],
                    mode="clip")
    return out


def _vectors(
    info: SceneInfo, windows: list[Window], stats: ChipStats, kept: np.ndarray, size: int
) -> dict[str, np.ndarray]:
    scene_transform = Affine.from_gdal(*info.transform)
    gts = np.array([gdal_transform(w, scene_transform) for w in windows], np.float64)
    gts = gts.reshape(-1, 6)
    boxes = np.stack(
        [gts[:, 0], gts[:, 3] + gts[:, 5] * size, gts[:, 0] + gts[:, 1] * size, gts[:, 3]], 1
    )
    return {
        "chip_scene": np.full(len(windows), -1, np.int32),
        "chip_window": window_rows(windows),
        "chip_transform": gts,
        "chip_bounds_wgs84": bounds_wgs84(CRS.from_wkt(info.crs_wkt), boxes),
        "chip_cloud_fraction": stats.cloud[kept].astype(np.float32),
        "chip_nodata_fraction": stats.nodata[kept].astype(np.float32),
    }


# -- driver side -------------------------------------------------------------
def as_input_error(result: Any, path: str) -> Any:
    """A task that failed for good (worker killed every try, out of memory) fails its
    scene instead of the run."""
    if isinstance(result, Exception) and not isinstance(result, InputError):
        return InputError(path, f"task failed ({type(result).__name__}: "
                          f"{(str(result).splitlines() or [''])[0]})")
    return result


@dataclasses.dataclass
class _Scene:
    """A scene whose parts are being written."""

    plan: ScenePlan
    start: int = 0
    scene_id: int = 0
    failed: bool = False
    dropped: Counter[str] = dataclasses.field(default_factory=Counter)


class TileRun:
    """The driver: parts in input order through :func:`ordered_map`, whole shards to the
    workers, per-chip vectors and metadata committed every ``commit_interval``."""

    def __init__(
        self,
        store: ChipStore,
        client: Client,
        params: TileParams,
        report: RunReport,
        sensor: SensorProfile | None,
        progress: bool,
    ) -> None:
        self.store = store
        self.client = client
        self.params = params
        self.report = report
        self.sensor = sensor
        self.profiles = all_profiles()
        self.scenes = store.scenes  # committed
        self.run_index = len(store.runs)  # this run's place in the run log
        self.appender = ShardAppender(store, self._load_tail)
        self.shard_jobs: dict[int, Future] = {}
        self.finished: list[SceneRecord] = []
        self.fingerprints: dict[str, str] = {}  # computed once per scene and run
        self.committer = Committer(params.commit_interval, self._commit)
        self.bar = tqdm(total=0, unit="part", disable=not progress, dynamic_ncols=True)

    def run(self, paths: list[str]) -> None:
        todo = self._pending(paths)
        self.report.counts["scenes_todo"] = len(todo)
        retries = self.params.retries
        plans = ordered_map(
            prepare_scene, todo,
            lambda p: (p, self.sensor, self.profiles, self.params, self.fingerprints.get(p)),
            self.client, per_thread=4, priority=10, retries=retries,
        )
        parts = ordered_map(
            tile_part, self._units(plans),
            lambda u: (u[0].plan.info, u[0].plan.stretch, u[0].plan.parts[u[1]], self.params,
                       self.appender.layout),
            self.client, per_thread=4, keep=summary, retries=retries,
        )
        try:
            for (scene, index), (result, future) in parts:
                self._take(scene, index, as_input_error(result, scene.plan.info.path), future)
                self.committer.tick()
        except KeyboardInterrupt:
            self.report.interrupted = True
            raise
        finally:
            self.bar.close()
            parts.close()
            plans.close()
            self._commit()

    def _pending(self, paths: list[str]) -> list[str]:
        """Scenes not yet in the store; a scene is known by its path or, once moved or
        copied, by its content fingerprint, so a rerun never duplicates chips."""
        by_path = {s.path: s.fingerprint for s in self.scenes}
        known = known_scenes(self.scenes)
        todo = []
        for path in paths:
            try:
                fp = self.fingerprints.get(path) or (
                    fingerprint(path) if Path(path).exists() or path in by_path else None)
            except OSError as e:
                self.report.fail(path, f"cannot read ({e.strerror})")
                continue
            if path in by_path and fp != by_path[path]:
                self.report.fail(
                    path, "changed since it was tiled into this store; use a new store"
                )
            elif fp in known:
                self.report.counts["scenes_already_in_store"] += 1
            else:
                todo.append(path)
                if fp:
                    self.fingerprints[path] = fp
        return todo

    def _units(self, plans: Iterator[tuple[str, Any]]) -> Iterator[tuple[_Scene, int]]:
        """(scene, part index) in write order; scenes that cannot be tiled are reported."""
        for path, plan in plans:
            plan = as_input_error(plan, path)
            if isinstance(plan, InputError):
                self.report.fail(path, plan.reason)
                continue
            self.bar.total = (self.bar.total or 0) + len(plan.parts)
            self.bar.refresh()
            scene = _Scene(plan)
            for index in range(len(plan.parts)):
                yield scene, index

    def _load_tail(self, refs: list[ChunkRef]) -> list[tuple[Future, int]]:
        """The committed chips of a partial last shard, read by a worker, kept there."""
        future = self.client.submit(read_chunks, refs, pure=False, retries=self.params.retries)
        return [(future, i) for i in range(len(refs))]

    def _take(
        self, scene: _Scene, index: int, result: PartResult | InputError, future: Future
    ) -> None:
        self.bar.update(1)
        if index == 0:
            scene.start = self.appender.end
            scene.scene_id = len(self.scenes) + len(self.finished)
        if scene.failed:
            return
        if isinstance(result, InputError):
            scene.failed = True
            self.appender.rewind(scene.start)
            self.report.fail(scene.plan.info.path, result.reason)
            return
        result.vectors["chip_scene"][:] = scene.scene_id
        n = len(result.vectors["chip_scene"])
        self.appender.append([(future, i) for i in range(n)], result.vectors)
        scene.dropped.update(result.dropped)
        self._hand_out(partial=False)
        self.appender.release(scene.start)  # a failure of this scene rewinds no further
        if index == len(scene.plan.parts) - 1:
            self._finish(scene)

    def _finish(self, scene: _Scene) -> None:
        plan, n = scene.plan, self.appender.end - scene.start
        record = SceneRecord.from_dict(plan.info.to_record() | {
            "id": scene.scene_id,
            "stretch": plan.stretch.to_dict(),
            "n_chips": n,
            "chip_offset": scene.start,
            "n_windows": plan.n_windows,
            "dropped": dict(scene.dropped),
            "run": self.run_index,
        })
        self.finished.append(record)
        self.report.dropped.update(scene.dropped)
        self.report.counts["scenes_done"] += 1
        self.report.counts["chips_written"] += n
        self.report.counts["chips_considered"] += plan.n_windows
        self.bar.set_postfix(scenes=self.report.counts["scenes_done"], chips=self.appender.end)

    def _hand_out(self, partial: bool) -> None:
        """Whole shards to the workers; a shard handed out again (after a rewind) waits
        for its previous write, so writes of one shard never overlap."""
        for shard, entries in self.appender.take_shards(partial):
            previous = self.shard_jobs.pop(shard, None)
            if previous is not None:
                self._wait(previous)
            self.shard_jobs[shard] = self.client.submit(
                assemble_shard, self.appender.layout, shard, _runs(entries),
                pure=False, retries=self.params.retries, priority=20,
            )

    def _wait(self, job: Future) -> None:
        """A shard that cannot be written (disk full, store gone) stops the run in one line,
        before anything is committed that would depend on it."""
        try:
            job.result()
        except Exception as e:
            for record in self.finished:  # finished, but never to be committed
                self.report.counts["scenes_done"] -= 1
                self.report.counts["chips_written"] -= record.n_chips
            self.finished = []
            reason = (str(e).splitlines() or [type(e).__name__])[0]
            raise InputError(self.store.path, f"cannot write chips ({reason}); what is "
                             "committed is intact, rerun the same command to resume") from None

    def _commit(self) -> None:
        if not self.finished:
            return
        self._hand_out(partial=True)
        jobs, self.shard_jobs = self.shard_jobs, {}
        for job in jobs.values():
            self._wait(job)
        last = self.finished[-1]
        assert last.chip_offset is not None, "the tile stage records every scene's offset"
        self.appender.commit(last.chip_offset + last.n_chips, scenes=self.finished)
        self.scenes = [*self.scenes, *self.finished]
        self.finished = []


def _runs(entries: list[tuple[Future, int]]) -> list[tuple[Future, int, int]]:
    """(future, i) entries as runs (future, lo, hi): one argument per task they come from."""
    runs: list[tuple[Future, int, int]] = []
    for future, i in entries:
        if runs and runs[-1][0] is future and runs[-1][2] == i:
            runs[-1] = (future, runs[-1][1], i + 1)
        else:
            runs.append((future, i, i + 1))
    return runs


def unique_scenes(
    paths: list[str],
) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """The scenes once each (first occurrence kept), (copy, original) for every path given
    again or byte-identical to an earlier one, and the fingerprints computed on the way.

    Only files of equal size are fingerprinted, each once, so every task of a job array
    can afford to look at all scenes.
    """
    kept: list[str] = []
    copies: list[tuple[str, str]] = []
    by_size: dict[int, list[str]] = {}
    prints: dict[str, str] = {}
    by_print: dict[tuple[int, str], str] = {}

    def original_of(path: str, size: int, group: list[str]) -> str | None:
        if path in group:
            return path
        if not group:
            return None
        try:
            for earlier in group:  # only the first of a size is not fingerprinted yet
                if earlier not in prints:
                    prints[earlier] = fingerprint(earlier)
                    by_print.setdefault((size, prints[earlier]), earlier)
            prints[path] = fingerprint(path)
        except OSError:
            return None  # unreadable: reported when it is tiled
        return by_print.get((size, prints[path]))

    for path in paths:
        try:
            size = Path(path).stat().st_size
        except OSError:
            kept.append(path)  # reported when it is tiled
            continue
        group = by_size.setdefault(size, [])
        original = original_of(path, size, group)
        if original is None:
            group.append(path)
            kept.append(path)
            if path in prints:
                by_print.setdefault((size, prints[path]), path)
        else:
            copies.append((path, original))
    return kept, copies, prints


def run_tile(
    store_path: str | Path,
    patterns: list[str],
    client: Client,
    params: TileParams,
    sensor_name: str | None = None,
    progress: bool = True,
    part: Part | None = None,
) -> RunReport:
    """Tile every scene into the store; failures are counted, never fatal."""
    report = RunReport("tile", {"scenes": patterns, "sensor": sensor_name, **params.to_dict()})
    sensor = load_profile(sensor_name) if sensor_name else None
    found = [expand_scenes([p]) for p in patterns]  # one by one: repeats across patterns count
    missing = [m for _, miss in found for m in miss]
    # before the split: every part of a job array sees the same duplicates
    paths, copies, prints = unique_scenes([p for hits, _ in found for p in hits])
    if part is not None:  # one task of a job array: its share, into its own part store
        report.parameters["part"] = str(part)
        paths = select_part(paths, part)
        store_path = part_store_path(Path(store_path), part)
    copies = [(c, o) for c, o in copies if o in paths]  # counted where the original is tiled
    for copy, original in copies:
        report.counts["scenes_duplicate"] += 1
        what = "given twice" if copy == original else f"same content as {original}"
        print(f"note: {copy}: {what}; tiled once", file=sys.stderr)
    report.parameters["duplicates"] = [list(c) for c in copies]
    for pattern in missing:
        report.fail(pattern, missing_reason(pattern))
    store = ChipStore.open_or_create(store_path, params.chip_size, params.shard_chips)
    with store.lock("geokr-etl tile"), sigterm_as_interrupt():
        store.recover()
        run = TileRun(store, client, params, report, sensor, progress)
        run.fingerprints.update(prints)  # computed already: each file is read once
        try:
            check_workers_see(client, lock_file(store.path), store.path)
            run.run(paths)
        finally:
            report.finish()
            store.append_run(RunRecord.of(report))
    return report
