"""Typed records of the store's metadata: its scene table, its run log, its merged parts.

The JSON document on disk is unchanged (``attrs["geokr"]``); these frozen records
are how code reads and extends it.  A record keeps every key it does not model in
``extra``, so ``from_dict(d).to_dict() == d`` for every record the stages write, and
is also a read-only mapping over that document, so ``scene["crs_wkt"]`` reads as
it always did.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Self

from pipeline.report import RunReport


class _Record(Mapping[str, Any]):
    """A frozen dataclass whose modelled fields plus ``extra`` are its JSON document."""

    _OPTIONAL: tuple[str, ...] = ()  # fields left out of the document while None

    extra: Mapping[str, Any]

    def _own(self) -> dict[str, Any]:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        values = {f.name: getattr(self, f.name) for f in fields if f.name != "extra"}
        return {k: v for k, v in values.items() if not (k in self._OPTIONAL and v is None)}

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps({**self._own(), **self.extra}))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]
        own = {k: v for k, v in doc.items() if k in names}
        extra = {k: v for k, v in doc.items() if k not in names}
        return cls(**own, extra=extra)  # type: ignore[call-arg]

    def __getitem__(self, key: str) -> Any:
        return self.extra[key] if key in self.extra else self._own()[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**self._own(), **self.extra})

    def __len__(self) -> int:
        return len({**self._own(), **self.extra})


@dataclasses.dataclass(frozen=True, eq=False)
class SceneRecord(_Record):
    """One scene of the store: where its chips are and what it was cut from."""

    _OPTIONAL = ("chip_offset", "run")

    id: int
    path: str
    n_chips: int
    fingerprint: str | None = None
    chip_offset: int | None = None  # first chip; None for stores built without the tile stage
    run: int | None = None  # index into the run log of the run that tiled it
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """The one identity rule: a scene is the same scene wherever its file lives, so
        its content fingerprint names it; its path only where no fingerprint was kept."""
        return self.fingerprint or self.path

    def shifted(self, scenes: int, chips: int, runs: int) -> SceneRecord:
        """This record once its store is appended behind ``scenes``/``chips``/``runs``."""
        return dataclasses.replace(
            self, id=self.id + scenes,
            chip_offset=None if self.chip_offset is None else self.chip_offset + chips,
            run=None if self.run is None else self.run + runs,
        )


@dataclasses.dataclass(frozen=True, eq=False)
class RunRecord(_Record):
    """One finished (or interrupted) run of an ETL stage, as kept in the store."""

    _OPTIONAL = ("part",)

    stage: str
    finished: str | None = None
    interrupted: bool = False
    part: str | None = None  # the job-array part it ran for, once consolidated
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, report: RunReport) -> RunRecord:
        return cls.from_dict(report.to_dict())

    @property
    def complete(self) -> bool:
        return bool(self.finished) and not self.interrupted


@dataclasses.dataclass(frozen=True, eq=False)
class PartRecord(_Record):
    """One part store of a job array merged into this store."""

    part: str
    path: str
    offset: int
    n_chips: int
    n_scenes: int
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def known_scenes(scenes: Iterable[SceneRecord]) -> frozenset[str]:
    """Keys of the scenes a store holds: "is this scene already there" is ``key in`` it."""
    return frozenset(s.key for s in scenes)


def append_scenes(doc: Mapping[str, Any], scenes: Sequence[SceneRecord]) -> dict[str, Any]:
    """``doc`` (a store's metadata) with ``scenes`` added to its scene table."""
    return {**doc, "scenes": [*doc.get("scenes", []), *(s.to_dict() for s in scenes)]}


def append_run(doc: Mapping[str, Any], *runs: RunRecord) -> dict[str, Any]:
    """``doc`` (a store's metadata or a label set's header) with ``runs`` logged."""
    return {**doc, "runs": [*doc.get("runs", []), *(r.to_dict() for r in runs)]}
