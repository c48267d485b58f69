"""The one dask driver pattern of the ETL stages: a bounded, ordered map and a committer.

Stages write in input order (so a killed run resumes to the chips of an
uninterrupted one) but must keep every worker busy.  :func:`ordered_map`
submits ahead while fewer tasks than the window are in flight and yields
results in submission order; the window is a few tasks per live worker
thread, recounted every few seconds because batch-job clusters grow and
shrink during a run.  :class:`Committer` publishes finished work every
``interval`` seconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

from dask.distributed import Client, Future

T = TypeVar("T")
RECOUNT_S = 5.0


class InFlight:
    """How many tasks to keep in flight: ``per_thread`` for each live worker thread."""

    def __init__(self, client: Client, per_thread: int, recount_s: float = RECOUNT_S) -> None:
        self.client = client
        self.per_thread = per_thread
        self.recount_s = recount_s
        self._counted = (-recount_s, per_thread)

    def size(self) -> int:
        now = time.monotonic()
        if now - self._counted[0] >= self.recount_s:
            threads = sum(self.client.nthreads().values())
            self._counted = (now, self.per_thread * max(1, threads))
        return self._counted[1]


def ordered_map(
    fn: Callable[..., Any],
    items: Iterable[T],
    args: Callable[[T], tuple[Any, ...]],
    client: Client | None,
    per_thread: int = 4,
    keep: Callable[[Any], Any] | None = None,
    **submit: Any,
) -> Generator[tuple[T, Any], None, None]:
    """``(item, fn(*args(item)))`` in the order of ``items``, computed on ``client``'s
    workers with a bounded window (in this process when ``client`` is None).

    With ``keep``, results stay where they were computed: what comes back is
    ``(keep(result), future)``, ``keep`` running on the worker too, so later tasks
    can take the whole result from the future without it passing through here.
    A task that raised yields its exception instead of a result.  Closing the
    iterator cancels whatever is still in flight.
    """
    if client is None:
        for item in items:
            try:
                result = fn(*args(item))
                yield item, result if keep is None else (keep(result), result)
            except Exception as e:
                yield item, e if keep is None else (e, None)
        return
    window = InFlight(client, per_thread)
    source = iter(items)
    pending: deque[tuple[T, Future, Future | None]] = deque()
    try:
        while True:
            while len(pending) < window.size():
                item = next(source, _END)
                if item is _END:
                    break
                future = client.submit(fn, *args(item), pure=False, **submit)
                small = None if keep is None else client.submit(keep, future, pure=False)
                pending.append((item, future, small))
            if not pending:
                return
            item, future, small = pending.popleft()
            yield item, _outcome(future) if small is None else (_outcome(small), future)
    finally:
        for _, future, small in pending:
            future.cancel()
            if small is not None:
                small.cancel()


_END: Any = object()


def _outcome(future: Future) -> Any:
    try:
        return future.result()
    except Exception as e:  # worker killed every try, out of memory, a bug in the task
        return e


class Committer:
    """Calls ``commit`` when ``interval`` seconds have passed since the last call."""

    def __init__(self, interval: float, commit: Callable[[], None]) -> None:
        self.interval = interval
        self._commit = commit
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last >= self.interval:
            self.now()

    def now(self) -> None:
        self._commit()
        self._last = time.monotonic()
