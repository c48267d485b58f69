"""One exception type for bad input, so every report line reads ``PATH: reason``."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A file or store that cannot be used, with the reason in one line."""

    def __init__(self, path: str | Path, reason: str | None = None) -> None:
        if reason is None:  # re-raised from one message (torch's DataLoader workers do that)
            path, _, reason = _last_line(str(path)).partition(": ")
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str]]:
        # Travels between dask workers and the driver.
        return (InputError, (self.path, self.reason))


def _last_line(message: str) -> str:
    """``PATH: reason`` from the last line of a re-raised traceback text."""
    line = [x for x in message.splitlines() if x.strip()][-1] if message.strip() else message
    prefix = f"{__name__}.{InputError.__name__}: "
    return line.removeprefix(prefix).removeprefix(f"{InputError.__name__}: ")


class NonFiniteError(ArithmeticError):
    """A run stopped because a value became NaN or infinite (exit 3): not the input's fault."""
