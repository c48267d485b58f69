"""One error policy for every command of ``geokr-etl``, ``geokr-train`` and ``geokr-eval``.

A command wrapped in :func:`error_policy` returns an :class:`ExitCode` (or
None for success); the policy turns the failures every command shares into
one line on stderr and a documented exit status, never a traceback:

* 0 done; 1 partial (some items failed, the others are committed);
* 2 nothing (more) could be done: bad input, a locked or read-only store, a
  full disk (what was committed before stays; rerun to resume);
* 3 a non-finite value stopped the run (training: the last good checkpoint is kept);
* 130 interrupted (what is finished is committed; rerun to resume).

Usage errors (bad option values) stay click's: exit 2 with the usage line.
"""

from __future__ import annotations

import enum
import errno
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pipeline.errors import InputError, NonFiniteError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_RESUME = "what is finished is committed; rerun the same command to resume"


class ExitCode(enum.IntEnum):
    OK = 0
    PARTIAL = 1
    INPUT = 2
    NON_FINITE = 3
    INTERRUPTED = 130


def error_policy(
    resume: str = DEFAULT_RESUME, committed: Callable[[dict[str, Any]], str] | None = None
) -> Callable[[F], F]:
    """Wrap a click command body; ``resume`` says what survives an interruption or a full
    disk, ``committed(kwargs)`` (optional) what exactly is committed after a full disk."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                code = fn(*args, **kwargs)
            except InputError as e:
                code = _fail(str(e), ExitCode.INPUT)
            except NonFiniteError as e:
                code = _fail(str(e), ExitCode.NON_FINITE)
            except KeyboardInterrupt:
                code = ExitCode.INTERRUPTED
            except OSError as e:
                reason = system_reason(e)
                if reason is None:
                    raise
                state = f"{committed(kwargs)}; " if committed else ""
                code = _fail(f"{e.filename or 'output'}: {reason}; {state}{resume}",
                             ExitCode.INPUT)
            if code == ExitCode.INTERRUPTED:
                click.echo(f"interrupted: {resume}", err=True)
            sys.exit(int(code or ExitCode.OK))

        return run  # type: ignore[return-value]

    return decorate


def system_reason(e: OSError) -> str | None:
    """The one-line reason for failures of the machine rather than of the code."""
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return "no space left on device (disk full or quota reached)"
    if e.errno == errno.EROFS:
        return "read-only file system"
    if e.errno == errno.EACCES or e.errno == errno.EPERM:
        return "permission denied"
    return None


def _fail(message: str, code: ExitCode) -> ExitCode:
    click.echo(f"error: {message}", err=True)
    return code


def store_state(kwargs: dict[str, Any]) -> str:
    """What the ``--store`` of a command holds, committed (read after a failed write)."""
    from pipeline.store.chips import ChipStore
    from pipeline.store.labels import LabelSet, label_names

    try:
        store = ChipStore.open(kwargs["store"])
        names = label_names(store)
        sets = [f"{n} {LabelSet.open(store, n, names).n_chips}" for n in names]
    except (InputError, OSError, KeyError):
        return "the store could not be read back"
    labelled = f", label sets (chips): {', '.join(sets)}" if sets else ""
    return (f"committed: {store.n_chips} chips of {len(store.scenes)} scenes"
            f"{labelled}")
