"""Executors: run units serially, on a local process pool, or on Dask distributed."""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import ConfigError
from ..evaluation import (
    Unit,
    run_unit,
)

logger = logging.getLogger(__name__)


def _run_serial(units: Sequence[Unit], strict: bool) -> Iterator[tuple[Unit, Any]]:
    for unit in units:
        yield unit, run_unit(unit, strict=strict)


def _run_local(
    units: Sequence[Unit], workers: int | None, strict: bool
) -> Iterator[tuple[Unit, Any]]:
    _refuse_while_bootstrapping()
    ctx = multiprocessing.get_context("spawn")  # JAX and fork do not mix
    # each worker limits itself to one BLAS thread on its first unit (evaluation.run_unit)
    pool = cf.ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(os.getpid(), _picklable(warnings.showwarning)),
    )
    try:
        futures = {pool.submit(run_unit, u, strict=strict): u for u in units}
        for fut in cf.as_completed(futures):
            unit = futures[fut]
            try:
                yield unit, fut.result()
            except Exception as exc:
                if strict:
                    raise
                yield unit, exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _refuse_while_bootstrapping() -> None:
    """A spawned worker re-imports the main script; one without a `__main__` guard would
    start a pool of its own there. Say what to do instead of multiprocessing's riddle."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(
            "run_sweep was called while a worker process was importing the main script: "
            "a script that runs a sweep on the local executor must call it under "
            '`if __name__ == "__main__":` (worker processes import the script)'
        )


#: Seconds between a worker's checks that its parent is still alive.
PARENT_POLL_SECONDS = 1.0
#: prctl option: the signal a process receives when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _picklable(fn: Callable[..., None]) -> Callable[..., None] | None:
    try:
        pickle.dumps(fn)
    except Exception:
        return None
    return fn


def _worker_init(parent: int, showwarning: Callable[..., None] | None) -> None:
    """Set up a pool worker: exit when the driver dies, show warnings the way it does.

    A driver killed outright (SIGKILL, the out-of-memory killer) cannot stop its workers; each
    worker therefore asks the kernel for SIGKILL when its parent dies (Linux
    `PR_SET_PDEATHSIG`) and, on every platform, watches its parent id from a daemon thread.
    Once the workers are gone, multiprocessing's resource tracker sees its last client close
    and exits too.
    """
    if showwarning is not None:
        warnings.showwarning = showwarning
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; polling the parent only")
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="safes-parent-watch", daemon=True).start()


def _warning_plugin(showwarning: Callable[..., None]) -> Any:
    """A Dask worker plugin that shows the worker's warnings with `showwarning`, as
    `_worker_init` does for the local pool (the CLI's one `safes: warning: ...` line).

    Defined on call: Dask is an optional dependency; the class is sent by value (cloudpickle).
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class ShowWarnings(WorkerPlugin):  # type: ignore[misc]
        def setup(self, worker: Any) -> None:
            warnings.showwarning = showwarning

    return ShowWarnings()


def _run_dask(
    units: Sequence[Unit], workers: int | None, scheduler: str | None, strict: bool
) -> Iterator[tuple[Unit, Any]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError(
            "the dask executor needs Dask distributed: pip install 'safes-framework[distributed]'"
        ) from None
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    dask_logger = logging.getLogger("distributed")
    level = dask_logger.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        dask_logger.setLevel(logging.WARNING)  # Dask's own config logs every start at INFO
    cluster = None
    if address:
        client = Client(address)
    else:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
        showwarning = _picklable(warnings.showwarning)
        if showwarning is not None:  # only on workers this sweep started, never on a shared cluster
            client.register_plugin(_warning_plugin(showwarning), name="safes-show-warnings")
    try:
        futures = {}
        for u in units:
            fut = client.submit(run_unit, u, strict=strict, pure=False)
            futures[fut.key] = (fut, u)
        for fut in as_completed([f for f, _ in futures.values()]):
            unit = futures[fut.key][1]
            try:
                yield unit, fut.result()
            except Exception as exc:
                if strict:
                    raise
                yield unit, exc
            finally:
                fut.release()
    finally:
        if dask_logger.level == logging.WARNING:
            dask_logger.setLevel(logging.ERROR)  # "worker still alive after 4 s, killing"
        client.close()
        if cluster is not None:
            cluster.close()
        dask_logger.setLevel(level)
