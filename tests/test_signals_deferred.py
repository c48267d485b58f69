"""A signal inside ``signals_deferred`` waits for the step to finish, then is delivered."""

from __future__ import annotations

import importlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from pipeline.report import signals_deferred, sigterm_as_interrupt


@pytest.fixture(autouse=True)
def python_ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler, whatever an earlier test's imports installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # a handler that were not held would run here, mid-step


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_waits_for_the_step_then_interrupts(signum: int) -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(), signals_deferred():
        steps.append("begun")
        _signal_self(signum)
        steps.append("finished")
    assert steps == ["begun", "finished"]


def test_nested_holds_deliver_once_at_the_outer_end() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(), signals_deferred():
        with signals_deferred():
            _signal_self(signal.SIGTERM)
            _signal_self(signal.SIGTERM)
            steps.append("inner")
        steps.append("outer")
    assert steps == ["inner", "outer"]


def test_handlers_are_restored_and_nothing_is_delivered_without_a_signal() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with signals_deferred():
        pass
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_cluster_layer_leaves_ctrl_c_an_interrupt() -> None:
    """dask_jobqueue's runner makes SIGINT exit 0 when imported; ours undoes that."""
    import dask_jobqueue.runner

    import pipeline.hpc.jobqueue as jobqueue

    importlib.reload(dask_jobqueue.runner)  # what its first import does
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    jobqueue._keep_ctrl_c()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
