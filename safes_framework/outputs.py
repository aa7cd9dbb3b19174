"""Output directories: checks before any work, and staged writes that never leave debris."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError

logger = logging.getLogger(__name__)

#: Prefix of the staging folders (and files) a writer keeps beside its target while it writes.
#: The writer's host and process id follow, so a later writer can tell a dead writer's leftovers
#: from a live one's: `.safes-partial-<host>-<pid>-<random>`.
PARTIAL_PREFIX = ".safes-partial-"


def check_output_dir(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Check that `path` can become an output directory, creating nothing.

    Call it before any work (and before any privacy budget is spent), so that a bad `--out`
    fails in one line instead of after the run.

    Args:
        path: the directory to write into (it need not exist).
        overwrite: a non-empty existing directory is acceptable (its files may be replaced).

    Returns:
        `path` as a `Path`.

    Raises:
        ConfigError: naming the path, when it exists and is not a directory, when it is a
            non-empty directory and `overwrite` is false, or when its nearest existing
            ancestor (itself, if it exists) is not a directory or not writable.
    """
    out = Path(path)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ConfigError(f"output directory {str(out)!r} exists and is not a directory")
        if not overwrite and any(out.iterdir()):
            raise ConfigError(
                f"output directory {str(out)!r} is not empty (add --overwrite, or pass "
                "overwrite=True)"
            )
    ancestor = out.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            f"cannot create output directory {str(out)!r}: {str(ancestor)!r} is a file, "
            "not a directory"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        where = "it" if ancestor == out.absolute() else repr(str(ancestor))
        raise ConfigError(f"output directory {str(out)!r} is not writable ({where} is read-only)")
    return out


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"


def _owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of a staging entry's name, or None when the name is not one."""
    if not name.startswith(PARTIAL_PREFIX):
        return None
    parts = name[len(PARTIAL_PREFIX) :].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the staging entries in `directory` left by dead writers on this host.

    A writer killed while writing (SIGKILL, a power cut) cannot remove its staging folder;
    the next writer into the same directory does. Entries of live processes, and of other
    hosts (a shared file system), are left alone.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    host = _host()
    for entry in directory.iterdir():
        owner = _owner(entry.name)
        if owner is None or owner[0] != host or _alive(owner[1]):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:  # another writer cleaned it first
            continue
        logger.info("removed %s, left by a writer that died (pid %d)", entry, owner[1])
        removed.append(entry)
    return removed


def _staging_prefix() -> str:
    return f"{PARTIAL_PREFIX}{_host()}-{os.getpid()}-"


@contextlib.contextmanager
def staged_directory(
    target: str | os.PathLike[str], *, overwrite: bool = False
) -> Iterator[Path]:
    """A staging directory whose files move into `target` when the block succeeds.

    The staging directory is created beside `target` (in its parent, so the final moves are
    renames on one file system) under `PARTIAL_PREFIX`. Leftovers of dead writers there are
    removed first. When the block exits normally, every file written into the staging
    directory replaces its namesake in `target` (`os.replace`, atomic per file, after all of
    them are complete); other files of `target` are left alone. Whatever happens, the
    staging directory is removed; a writer killed outright leaves it for the next one.

    A writer that produces a file in pieces (chunks of a large table) writes them into the
    staging directory and lets the block's exit publish the finished file.

    Args:
        target: the output directory (created if missing).
        overwrite: replace files of a non-empty `target`.

    Raises:
        ConfigError: `target` is unusable (see `check_output_dir`).
    """
    out = check_output_dir(target, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(), dir=out.parent))
    try:
        yield tmp
        out.mkdir(exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_file(target: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """A staging path whose file replaces `target` when the block succeeds.

    Like `staged_directory`, for one file: the staging file lives beside `target` under
    `PARTIAL_PREFIX`, dead writers' leftovers there are removed first, and the staging file
    is removed whatever happens.

    Raises:
        ConfigError: `target` exists and `overwrite` is false, or is a directory.
    """
    path = Path(target)
    if path.is_dir():
        raise ConfigError(f"{str(path)!r} is a directory, not a file")
    if path.exists() and not overwrite:
        raise ConfigError(f"file {str(path)!r} exists (add --overwrite, or pass overwrite=True)")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    fd, name = tempfile.mkstemp(prefix=_staging_prefix(), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
