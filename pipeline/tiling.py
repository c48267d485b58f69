"""``geokr-etl tile``: scenes → chips in the store, dask-parallel below the scene level.

Workers open scenes themselves and return kept chips; the driver is the only
writer and writes in input order (scene, then chip row), so a killed run that
is rerun gives exactly the chips of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from dask.distributed import Client, Future
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from tqdm import tqdm

from pipeline.errors import InputError
from pipeline.filters import FilterParams, drop_reason, gray
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
from pipeline.store import ChipBatch, ChipStore
from pipeline.windows import chip_rows, gdal_transform, strip_window

WGS84 = CRS.from_epsg(4326)
MIN_CHIPS_PER_PART = 32
WORKER_RECOUNT_S = 5.0


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
    batch: ChipBatch
    dropped: Counter[str]


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
        with rasterio.Env(GDAL_CACHEMAX=params.gdal_cache_mb << 20), rasterio.open(path) as src:
            stretch = compute_stretch(src, info.sensor.rgb, params.percentiles, info.nodata)
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
    info: SceneInfo, stretch: Stretch, windows: list[Window], params: TileParams
) -> PartResult | InputError:
    """Read one strip of chip rows once and cut, stretch and filter its chips."""
    strip = strip_window(windows)
    try:
        with rasterio.Env(GDAL_CACHEMAX=params.gdal_cache_mb << 20):
            src = open_cached(info.path)
            data = src.read(info.sensor.rgb, window=strip)
            valid = _valid_pixels(src, info, strip, data)
    except Exception as e:
        return InputError(info.path, f"read failed at {strip} ({str(e).splitlines()[0]})")
    rgb = stretch.apply(data)
    if not valid.all():
        rgb[:, ~valid] = 0
    return _cut(info, windows, strip, rgb, valid, params)


def _valid_pixels(
    src: rasterio.DatasetReader, info: SceneInfo, window: Window, data: np.ndarray
) -> np.ndarray:
    """GDAL semantics: a pixel is nodata only when every band is (:mod:`pipeline.nodata`)."""
    return info.nodata.valid(src, info.sensor.rgb, window, data)


def _cut(
    info: SceneInfo,
    windows: list[Window],
    strip: Window,
    rgb: np.ndarray,
    valid: np.ndarray,
    params: TileParams,
) -> PartResult:
    scene_transform = Affine.from_gdal(*info.transform)
    crs = CRS.from_wkt(info.crs_wkt)
    kept: dict[str, list[Any]] = {k: [] for k in ChipBatch.empty(1).arrays()}
    dropped: Counter[str] = Counter()
    luminance = gray(rgb)
    size = params.chip_size
    for w in windows:
        r, c = int(w.row_off - strip.row_off), int(w.col_off - strip.col_off)
        chip = rgb[:, r : r + size, c : c + size]
        reason, cloud, nodata = drop_reason(
            chip,
            valid[r : r + size, c : c + size],
            params.filters,
            luminance[r : r + size, c : c + size],
        )
        if reason:
            dropped[reason] += 1
            continue
        gt = gdal_transform(w, scene_transform)
        west, south = gt[0], gt[3] + gt[5] * params.chip_size
        east, north = gt[0] + gt[1] * params.chip_size, gt[3]
        kept["chips"].append(np.ascontiguousarray(chip))
        kept["chip_scene"].append(-1)
        kept["chip_window"].append((int(w.row_off), int(w.col_off), int(w.height), int(w.width)))
        kept["chip_transform"].append(gt)
        kept["chip_bounds_wgs84"].append(
            transform_bounds(crs, WGS84, west, south, east, north, densify_pts=21)
        )
        kept["chip_cloud_fraction"].append(cloud)
        kept["chip_nodata_fraction"].append(nodata)
    if not kept["chips"]:
        return PartResult(ChipBatch.empty(params.chip_size), dropped)
    template = ChipBatch.empty(params.chip_size).arrays()
    batch = ChipBatch(**{k: np.asarray(v, dtype=template[k].dtype) for k, v in kept.items()})
    return PartResult(batch, dropped)


# -- driver side -------------------------------------------------------------
def task_result(future: Future, path: str) -> Any:
    """The task's value; a task that failed for good (worker killed every try,
    out of memory) fails its scene instead of the run."""
    try:
        return future.result()
    except Exception as e:
        return InputError(path, f"task failed ({type(e).__name__}: {str(e).splitlines()[0]})")


class TileRun:
    """The driver: submits work in order, writes results in order, commits periodically."""

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
        self.meta = store.meta
        self.writer = store.writer()
        self.finished: list[dict[str, Any]] = []
        self.fingerprints: dict[str, str] = {}  # computed once, by _pending
        self.last_commit = time.monotonic()
        self._slots = (0.0, 4)
        self.bar = tqdm(total=0, unit="part", disable=not progress, dynamic_ncols=True)

    @property
    def max_parts(self) -> int:
        """Parts in flight: four per worker thread, re-read every few seconds because
        batch-job clusters grow and shrink while the run goes on."""
        if time.monotonic() - self._slots[0] > WORKER_RECOUNT_S:
            threads = sum(self.client.nthreads().values())
            self._slots = (time.monotonic(), 4 * max(1, threads))
        return self._slots[1]

    def run(self, paths: list[str]) -> None:
        todo = self._pending(paths)
        self.report.counts["scenes_todo"] = len(todo)
        prep: dict[int, Future] = {}
        parts: deque[tuple[int, int, Future]] = deque()
        plans: dict[int, ScenePlan] = {}
        feed = [0, 0]  # next (scene, part) to submit
        try:
            for i, path in enumerate(todo):
                self._submit_preps(todo, i, prep)
                plan = self._plan(path, prep[i])
                if plan is not None:
                    plans[i] = plan
                    self._write_scene(i, plan, plans, prep, parts, feed)
                prep.pop(i)
                plans.pop(i, None)
                if feed[0] <= i:
                    feed[:] = [i + 1, 0]
                self._maybe_commit()
        except KeyboardInterrupt:
            self.report.interrupted = True
            raise
        finally:
            self.bar.close()
            for _, _, f in parts:
                f.cancel()
            for f in prep.values():
                f.cancel()
            self._commit()

    def _pending(self, paths: list[str]) -> list[str]:
        """Scenes not yet in the store; a scene is known by its path or, once moved or
        copied, by its content fingerprint, so a rerun never duplicates chips."""
        by_path = {s["path"]: s["fingerprint"] for s in self.meta["scenes"]}
        known = set(by_path.values())
        todo = []
        for path in paths:
            try:
                fp = fingerprint(path) if Path(path).exists() or path in by_path else None
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

    def _submit_preps(self, todo: list[str], i: int, prep: dict[int, Future]) -> None:
        for j in range(i, min(len(todo), i + self.max_parts)):
            if j not in prep:
                prep[j] = self.client.submit(
                    prepare_scene,
                    todo[j],
                    self.sensor,
                    self.profiles,
                    self.params,
                    self.fingerprints.get(todo[j]),
                    pure=False,
                    priority=10,
                    retries=self.params.retries,
                )

    def _plan(self, path: str, future: Future) -> ScenePlan | None:
        result = task_result(future, path)
        if isinstance(result, InputError):
            self.report.fail(path, result.reason)
            return None
        self.bar.total = (self.bar.total or 0) + len(result.parts)
        self.bar.refresh()
        return result

    def _top_up(
        self,
        plans: dict[int, ScenePlan],
        prep: dict[int, Future],
        parts: deque[tuple[int, int, Future]],
        feed: list[int],
    ) -> None:
        """Submit parts in write order while fewer than ``max_parts`` are outstanding."""
        while len(parts) < self.max_parts:
            s, p = feed
            plan = plans.get(s)
            if plan is None:
                future = prep.get(s)
                if future is None or not future.done():
                    return
                result = task_result(future, "")
                if isinstance(result, InputError):
                    feed[:] = [s + 1, 0]
                    continue
                plan = result
            if p >= len(plan.parts):
                feed[:] = [s + 1, 0]
                continue
            future = self.client.submit(
                tile_part,
                plan.info,
                plan.stretch,
                plan.parts[p],
                self.params,
                pure=False,
                retries=self.params.retries,
            )
            parts.append((s, p, future))
            feed[1] += 1

    def _write_scene(
        self,
        i: int,
        plan: ScenePlan,
        plans: dict[int, ScenePlan],
        prep: dict[int, Future],
        parts: deque[tuple[int, int, Future]],
        feed: list[int],
    ) -> None:
        start = self.writer.end
        dropped: Counter[str] = Counter()
        scene_id = len(self.meta["scenes"]) + len(self.finished)
        for _ in plan.parts:
            self._top_up(plans, prep, parts, feed)
            s, _p, future = parts.popleft()
            assert s == i, "parts are written in submission order"
            result = task_result(future, plan.info.path)
            self.bar.update(1)
            if isinstance(result, InputError):
                self._abandon(i, parts)
                if feed[0] == i:
                    feed[:] = [i + 1, 0]
                self.writer.rewind(start)
                self.report.fail(plan.info.path, result.reason)
                return
            result.batch.chip_scene[:] = scene_id
            self.writer.append(result.batch)
            dropped.update(result.dropped)
        record = plan.info.to_record() | {
            "id": scene_id,
            "stretch": plan.stretch.to_dict(),
            "n_chips": self.writer.end - start,
            "chip_offset": start,
            "n_windows": plan.n_windows,
            "dropped": dict(dropped),
            "run": len(self.meta["runs"]),
        }
        self.finished.append(record)
        self.report.dropped.update(dropped)
        self.report.counts["scenes_done"] += 1
        self.report.counts["chips_written"] += self.writer.end - start
        self.report.counts["chips_considered"] += plan.n_windows
        self.bar.set_postfix(scenes=self.report.counts["scenes_done"], chips=self.writer.end)

    def _abandon(self, i: int, parts: deque[tuple[int, int, Future]]) -> None:
        while parts and parts[0][0] == i:
            parts.popleft()[2].cancel()

    def _maybe_commit(self) -> None:
        if time.monotonic() - self.last_commit >= self.params.commit_interval:
            self._commit()

    def _commit(self) -> None:
        if not self.finished:
            return
        self.meta["scenes"] = self.meta["scenes"] + self.finished
        end = self.meta["scenes"][-1]["chip_offset"] + self.meta["scenes"][-1]["n_chips"]
        self.writer.flush()
        self.store.commit(end, self.meta)
        self.meta = self.store.meta
        self.finished = []
        self.last_commit = time.monotonic()


def record_run(store: ChipStore, report: RunReport) -> None:
    meta = store.meta
    meta["runs"] = [*meta["runs"], report.to_dict()]
    store.write_meta(meta)


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
    paths, missing = expand_scenes(patterns)
    if part is not None:  # one task of a job array: its share, into its own part store
        report.parameters["part"] = str(part)
        paths = select_part(paths, part)
        store_path = part_store_path(Path(store_path), part)
    for pattern in missing:
        report.fail(pattern, missing_reason(pattern))
    store = ChipStore.open_or_create(store_path, params.chip_size, params.shard_chips)
    with store.lock("geokr-etl tile"), sigterm_as_interrupt():
        store.recover()
        run = TileRun(store, client, params, report, sensor, progress)
        try:
            run.run(paths)
        finally:
            report.finish()
            record_run(store, report)
    return report
