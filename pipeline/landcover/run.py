"""``geokr-etl label``: the driver that labels a store's chips with land cover.

Work is split into runs of consecutive chips of one scene (one dask task
each, :func:`pipeline.landcover.lookup.count_scene`) and goes through the
ETL's one driver pattern (:mod:`pipeline.driver`): results in chip order,
a few tasks per live worker thread in flight, the finished prefix published
every ``commit_interval`` seconds, so an interrupted run resumes where its
label set's ``n_chips`` stopped and a second run over the same parameters is
a no-op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from dask.distributed import Client
from tqdm import tqdm

from pipeline.driver import Committer, ordered_map
from pipeline.errors import InputError
from pipeline.hpc import ClusterOptions, open_client
from pipeline.landcover.legend import Legend, class_set
from pipeline.landcover.lookup import SceneCounts, SceneJob, count_scene, split_runs
from pipeline.landcover.tiles import TileIndex, build_index, expand_sources
from pipeline.report import RunReport, sigterm_as_interrupt
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet, sample_weights
from pipeline.store.records import RunRecord
from pipeline.versions import software_versions

COMMIT_SECONDS = 5.0


@dataclasses.dataclass
class LabelConfig:
    store: Path
    sources: list[str]
    legend: str = "globeland30"
    name: str | None = None
    classes: str = "paper"
    min_labeled: float = 0.5
    oversample: int = 8
    step: int | None = None
    workers: int | None = None  # 0: in this process, no dask
    scheduler: str | None = None
    cluster: str | None = None  # slurm | pbs: workers are batch jobs (pipeline.hpc)
    cluster_config: str | None = None
    jobs: int | None = None
    job_chips: int = 2048
    progress: bool = True
    tile_index: Path | None = None  # JSON catalog of the tiles (default: in the store)
    commit_interval: float | None = None  # seconds between commits (None: COMMIT_SECONDS)


def index_path(store: Path, paths: list[Path]) -> Path:
    """Where the tile index of these rasters is kept when no --tile-index is given
    (a zarr group of the store, see :meth:`TileIndex.save`)."""
    key = hashlib.sha1("\n".join(map(str, paths)).encode()).hexdigest()[:16]
    return store / "landcover_index" / key


def default_name(legend: Legend, index: TileIndex) -> str:
    years = {r.year for r in index.records}
    if len(years) == 1 and None not in years:
        return f"{legend.name}_{years.pop()}"
    return legend.name


def run_label(cfg: LabelConfig) -> RunReport:
    """Label every chip not yet in the label set; returns the run report."""
    store = ChipStore.open(cfg.store, "r+")
    if store.n_chips == 0:
        raise InputError(store.path, "store holds no chips (run geokr-etl tile first)")
    legend = Legend.load(cfg.legend)
    classes = class_set(cfg.classes)
    if not 0.0 <= cfg.min_labeled <= 1.0:
        raise InputError(str(cfg.min_labeled), "--min-labeled must lie in [0, 1]")
    paths = expand_sources(cfg.sources)
    report = RunReport("label", {k: str(v) for k, v in dataclasses.asdict(cfg).items()})
    # The lock before the cluster: a second run is refused before any batch job starts;
    # when no job starts, nothing but the lock file has been touched.
    with store.lock("geokr-etl label"), _client(cfg) as client, sigterm_as_interrupt():
        index = _index(store, paths, cfg, report)
        if not _overlaps_a_chip(store, index):
            print(f"warning: {', '.join(cfg.sources)}: land cover overlaps no chip of the store; "
                  "nothing labelled", file=sys.stderr)
            report.counts["landcover_overlaps_no_chip"] = 1
            report.finish()
            return report
        name = cfg.name or default_name(legend, index)
        header = {
            "product": legend.product,
            "legend": {"name": legend.name, "fingerprint": legend.fingerprint,
                       "source": legend.source},
            "classes": [list(c) for c in classes],
            "parameters": {
                "sources": sorted(str(p) for p in paths), "min_labeled": cfg.min_labeled,
                "oversample": cfg.oversample, "step": cfg.step,
            },
            "versions": software_versions(),
        }
        labels = LabelSet.open_or_create(store, name, header)
        report.parameters["name"] = name
        try:
            _label_pending(store, labels, index, legend, cfg, report, client)
        finally:
            report.finish()
            labels.append_run(RunRecord.of(report))
            labels.remove_if_empty()
    return report


def _overlaps_a_chip(store: ChipStore, index: TileIndex, step: int = 65536) -> bool:
    """Whether any tile lies under any chip; stops at the first block that has one."""
    for lo in range(0, store.n_chips, step):
        bounds = store.read("chip_bounds_wgs84", slice(lo, min(lo + step, store.n_chips)))
        if len(index.query(bounds)[0]):
            return True
    return False


def _index(store: ChipStore, paths: list[Path], cfg: LabelConfig, report: RunReport) -> TileIndex:
    """Index the tiles (reusing the catalog file); unusable rasters are reported and left out."""
    index = build_index(
        paths, cache=cfg.tile_index or index_path(store.path, paths),
        on_error=lambda e: report.fail(e.path, e.reason, kind="tiles_failed"),
    )
    report.counts["tiles_indexed"] = len(index.records)
    for rec in index.records:
        if rec.note:
            print(f"warning: {rec.path}: {rec.note}", file=sys.stderr)
            report.counts["tiles_misnamed"] += 1
    return index


def _label_pending(
    store: ChipStore, labels: LabelSet, index: TileIndex, legend: Legend, cfg: LabelConfig,
    report: RunReport, client: Client | None,
) -> None:
    start, n = labels.n_chips, store.n_chips
    if start > n:
        raise InputError(labels.where, f"label set has {start} chips, the store only {n}")
    report.counts["chips_already_labelled"] = start
    if start == n:
        return
    labels.resize(n)
    jobs = _jobs(store, labels, index, legend, cfg, start, n)
    writer = _Writer(labels, start, n, cfg.min_labeled)
    interval = COMMIT_SECONDS if cfg.commit_interval is None else cfg.commit_interval
    committer = Committer(interval, lambda: writer.flush(report))
    bar = tqdm(total=n - start, unit="chip", desc=f"label {labels.name}", disable=not cfg.progress)
    results = ordered_map(count_scene, jobs, lambda job: (job,), client, per_thread=3)
    try:
        for _, result in results:
            if isinstance(result, Exception):
                raise result
            writer.add(result)
            report.counts["chips_labelled"] += len(result.chip_ids)
            bar.update(len(result.chip_ids))
            committer.tick()
    except KeyboardInterrupt:
        report.interrupted = True
    except InputError as e:
        report.fail(e.path, e.reason, kind="tiles_failed")
        raise
    finally:
        results.close()
        bar.close()
        writer.flush(report)
    report.counts["chips_valid"] = int(writer.valid[: writer.done - start].sum())


def _jobs(
    store: ChipStore, labels: LabelSet, index: TileIndex, legend: Legend, cfg: LabelConfig,
    start: int, n: int,
) -> Iterator[SceneJob]:
    scenes = store.scenes
    chip_scene = store.read("chip_scene", slice(start, n))
    all_gts = store.read("chip_transform", slice(start, n))  # 48 B a chip: read once
    all_bounds = store.read("chip_bounds_wgs84", slice(start, n))
    lut = legend.lut([c for c, _ in labels.classes])
    for lo, hi in split_runs(chip_scene, start, cfg.job_chips):
        gts = all_gts[lo - start : hi - start]
        pc, pt = index.query(all_bounds[lo - start : hi - start])
        used, local_t = np.unique(pt, return_inverse=True)
        yield SceneJob(
            chip_ids=np.arange(lo, hi), transforms=gts,
            crs_wkt=scenes[int(chip_scene[lo - start])]["crs_wkt"], chip_size=store.chip_size,
            tiles=[index.records[int(t)] for t in used], pair_chip=pc,
            pair_tile=local_t.reshape(-1), lut=lut, n_classes=len(labels.classes),
            oversample=cfg.oversample, step=cfg.step, nodata=legend.nodata,
        )


def _client(cfg: LabelConfig) -> contextlib.AbstractContextManager[Client | None]:
    options = ClusterOptions(cfg.workers, cfg.scheduler, cfg.cluster, cfg.cluster_config, cfg.jobs)
    return contextlib.nullcontext() if options.in_process else open_client(options)


class _Writer:
    """Keeps finished rows (they come in chip order) in memory and publishes them."""

    def __init__(self, labels: LabelSet, start: int, n: int, min_labeled: float) -> None:
        self.labels, self.start, self.min_labeled = labels, start, min_labeled
        k = len(labels.classes)
        self.props = np.zeros((n - start, k), np.float32)
        self.frac = np.zeros(n - start, np.float32)
        self.valid = np.zeros(n - start, bool)
        self.dominant = np.full(n - start, -1, np.int16)
        self.done = self.written = start
        # tile path → chips it labelled (over all runs), kept in the label set's attrs
        self.tiles: dict[str, int] = {t["path"]: t["chips"] for t in labels.header["tiles"]}

    def add(self, r: SceneCounts) -> None:
        i = r.chip_ids - self.start
        lab = r.labeled
        with np.errstate(invalid="ignore", divide="ignore"):
            props = np.where(lab[:, None] > 0, r.counts / lab[:, None], 0.0)
        self.props[i] = props
        self.frac[i] = lab / r.area
        self.valid[i] = (lab > 0) & (self.frac[i] >= self.min_labeled)
        self.dominant[i] = np.where(lab > 0, props.argmax(1), -1)
        for path, k in r.tile_chips.items():
            self.tiles[path] = self.tiles.get(path, 0) + k
        assert int(r.chip_ids[0]) == self.done, "results come in chip order"
        self.done = int(r.chip_ids[-1]) + 1

    def flush(self, report: RunReport) -> None:
        if self.done == self.written:
            return
        a, b = self.written - self.start, self.done - self.start
        self.labels.write_rows(self.written, {
            "proportions": self.props[a:b], "labeled_fraction": self.frac[a:b],
            "valid": self.valid[a:b], "dominant": self.dominant[a:b],
        })
        dominant = np.concatenate([self.labels.read("dominant"), self.dominant[a:b]])
        valid = np.concatenate([self.labels.read("valid"), self.valid[a:b]])
        weights = sample_weights(dominant, valid, self.props.shape[1])
        self.labels.array("sample_weight")[: self.done] = weights
        tiles = [{"path": p, "chips": k} for p, k in sorted(self.tiles.items())]
        self.labels.commit(self.done, {"tiles": tiles})
        report.counts["commits"] += 1
        self.written = self.done
