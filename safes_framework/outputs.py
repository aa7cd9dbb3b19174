"""Checks on output locations, run before any work so that no error comes after the budget."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def check_output_dir(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Check that a directory can be written at `path`, creating nothing.

    The directory may exist (empty, or any content with `overwrite`) or not yet exist (then
    its nearest existing ancestor must be a writable directory). A release is first written
    beside the directory and moved into it, so the parent must be writable too.

    Returns:
        `path` as a `Path`.

    Raises:
        ConfigError: naming the path: it exists as a file; it is not empty and `overwrite` is
            false; or it (or its parent) is not writable (read-only, or not a directory).
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output directory {str(out)!r} exists as a file")
    if out.is_dir():
        try:
            empty = not any(out.iterdir())
        except OSError as exc:
            raise ConfigError(
                f"output directory {str(out)!r} cannot be read: {exc.strerror}"
            ) from None
        if not empty and not overwrite:
            raise ConfigError(f"output directory {str(out)!r} is not empty (add --overwrite)")
        if not _writable(out):
            raise ConfigError(f"output directory {str(out)!r} is not writable (read-only)")
    parent = out.absolute().parent
    ancestor = parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            f"output directory {str(out)!r} cannot be created: {str(ancestor)!r} is a file"
        )
    if not _writable(ancestor):
        raise ConfigError(
            f"output directory {str(out)!r} cannot be written: {str(ancestor)!r} is not "
            "writable (read-only)"
        )
    return out


def _writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)
