"""One exception type for bad input, so every report line reads ``PATH: reason``."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A file or store that cannot be used, with the reason in one line."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str]]:
        # Travels between dask workers and the driver.
        return (InputError, (self.path, self.reason))


class NonFiniteError(ArithmeticError):
    """A run stopped because a value became NaN or infinite (exit 3): not the input's fault."""
