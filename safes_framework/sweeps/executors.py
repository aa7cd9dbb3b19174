"""Executors: run units serially, on a local process pool, or on Dask distributed."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
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
    ctx = multiprocessing.get_context("spawn")  # JAX and fork do not mix
    # each worker limits itself to one BLAS thread on its first unit (evaluation.run_unit)
    pool = cf.ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=ctx)
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
