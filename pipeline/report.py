"""Run reports: every skipped scene or chip is counted, every failure is one line."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pipeline.versions import software_versions


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Batch schedulers send SIGTERM before killing: stop as cleanly as on Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM across a step that must complete or not start (a commit).

    A signal that arrives inside is delivered when the step has finished, to the
    handler that was in place before (so ``sigterm_as_interrupt`` still turns it
    into ``KeyboardInterrupt``), never in the middle.  Nested holds deliver once, at
    the outermost end.  Outside the main thread (where Python runs no signal
    handler) it holds nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[signal.Signals] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append(signal.Signals(signum))

    previous = {s: signal.signal(s, hold) for s in HELD_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            _deliver(pending[0], previous[pending[0]])


def _deliver(signum: int, handler: Any) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)  # the default action, now that the step is done


@dataclasses.dataclass
class RunReport:
    """What one run did; kept in the store and printed as the closing summary."""

    stage: str
    parameters: dict[str, Any]
    started: str = dataclasses.field(default_factory=utc_now)
    finished: str | None = None
    versions: dict[str, str] = dataclasses.field(default_factory=software_versions)
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    dropped: Counter[str] = dataclasses.field(default_factory=Counter)
    failures: list[dict[str, str]] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    _t0: float = dataclasses.field(default_factory=time.monotonic, repr=False)

    def fail(self, path: str, reason: str, kind: str = "scenes_failed") -> None:
        """Record and print one failure line; the run goes on."""
        self.counts[kind] += 1
        self.failures.append({"path": path, "reason": reason})
        print(f"error: {path}: {reason}", file=sys.stderr, flush=True)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._t0

    def finish(self) -> None:
        self.finished = utc_now()

    def rate(self, key: str) -> float:
        return self.counts[key] / max(self.seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "started": self.started,
            "finished": self.finished,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "parameters": self.parameters,
            "versions": self.versions,
            "counts": dict(self.counts),
            "dropped": dict(self.dropped),
            "failures": self.failures,
        }

    def summary(self, rate_key: str) -> str:
        lines = [
            f"{self.stage}: {'interrupted' if self.interrupted else 'finished'} "
            f"in {self.seconds:.1f} s"
        ]
        for key, value in sorted(self.counts.items()):
            lines.append(f"  {key:<22} {value}")
        for reason, value in sorted(self.dropped.items()):
            lines.append(f"  dropped ({reason}){'':<{max(0, 12 - len(reason))}} {value}")
        lines.append(f"  {rate_key + ' per second':<22} {self.rate(rate_key):.1f}")
        return "\n".join(lines)
