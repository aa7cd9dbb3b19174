"""The sweep driver: plan the units still to run, execute them, store their rows."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExecutorError
from ..evaluation import (
    Unit,
    cell_key,
)
from ..outputs import check_output_dir
from .config import EXECUTORS, SweepConfig
from .executors import _run_dask, _run_local, _run_serial
from .store import ResultStore
from .summary import Progress, SweepSummary

logger = logging.getLogger(__name__)


def run_sweep(
    config: SweepConfig,
    out: str | os.PathLike[str],
    *,
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    fmt: str | None = None,
    fresh: bool = False,
    flush_every: int = 16,
    flush_seconds: float = 30.0,
    progress: Progress | None = None,
    strict: bool = False,
) -> SweepSummary:
    """Run (or resume) a sweep; rows are stored as units finish.

    Args:
        config: the grid and protocol.
        out: results directory (see `ResultStore`); cells already stored there are skipped.
        executor: "local" (process pool on this machine), "dask" (Dask distributed: a
            LocalCluster, or the scheduler at `scheduler` / $DASK_SCHEDULER_ADDRESS) or
            "serial" (in this process; debugging).
        workers: processes of the local pool or LocalCluster (default: all cores).
        scheduler: address of a running Dask scheduler ("tcp://host:8786").
        fmt: "csv" or "parquet" (default: what `out` holds, else csv).
        fresh: delete earlier results in `out` first.
        flush_every: store after this many finished units...
        flush_seconds: ...or after this many seconds, whichever comes first.
        progress: called after every finished unit with the running summary.
        strict: stop at the first failure instead of recording it.

    Returns:
        The summary. Interrupting (Ctrl-C) stores what finished, then re-raises.
    """
    check_output_dir(out, overwrite=True)  # an existing sweep directory is resumed
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    config.validate()
    store = ResultStore.open(out, config, fmt=fmt, fresh=fresh)
    done = store.completed_cells()
    units = config.units(done)
    summary = SweepSummary(
        out=Path(out), units_planned=len(units), cells_skipped=len(done & _all_cells(config))
    )
    start = time.perf_counter()
    logger.info(
        "sweep: %d units to run, %d cells already stored", len(units), summary.cells_skipped
    )
    if not units:
        return summary
    if executor == "serial":
        stream: Iterator[tuple[Unit, Any]] = _run_serial(units, strict)
    elif executor == "local":
        stream = _run_local(units, workers, strict)
    else:
        stream = _run_dask(units, workers, scheduler, strict)
    buffer: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    pending = 0
    first_loss: BaseException | None = None
    try:
        for unit, result in stream:
            if isinstance(result, BaseException):
                first_loss = first_loss or result
                summary.units_lost += 1
                summary.errors.append(f"{unit.label}: {type(result).__name__}: {result}")
                logger.error("sweep: %s was lost: %s", unit.label, result)
            else:
                buffer.extend(result)
                pending += 1
                summary.units_done += 1
                failed = {r["cell"] for r in result if r["status"] == "failed"}
                cells = {r["cell"] for r in result}
                summary.cells_failed += len(failed)
                summary.cells_ok += len(cells - failed)
            if pending >= flush_every or time.monotonic() - last_flush > flush_seconds:
                store.append(buffer)
                buffer, pending, last_flush = [], 0, time.monotonic()
            summary.seconds = time.perf_counter() - start
            if progress is not None:
                progress(summary, unit)
    finally:
        store.append(buffer)
        summary.seconds = time.perf_counter() - start
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if summary.units_lost and not summary.units_done:
        raise ExecutorError(_all_lost(summary, executor)) from first_loss
    return summary


def _all_lost(summary: SweepSummary, executor: str) -> str:
    """The message of a sweep whose every unit was lost: the first error, and a likely cause."""
    message = (
        f"every unit was lost by the {executor} executor ({summary.units_lost} of "
        f"{summary.units_planned}); the first: {summary.errors[0]}"
    )
    main = sys.modules.get("__main__")
    if executor == "local" and getattr(main, "__file__", None):
        message += (
            f"; if {main.__file__} is a script, call run_sweep under "  # type: ignore[union-attr]
            '`if __name__ == "__main__":` (each worker process imports the script; its '
            "error is on stderr)"
        )
    return message


def _all_cells(config: SweepConfig) -> set[str]:
    return {cell_key(u.dataset, s, u.repeat) for u in config.units() for s in u.settings}
