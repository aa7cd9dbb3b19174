"""Count sources beyond memory: marginal counts computed where the data lives.

`duckdb` (optional `scale` extra) scans a CSV or Parquet file, an Arrow table or a DuckDB
relation in place; `dask` (optional `distributed` extra) counts a Dask DataFrame on its
cluster. Both implement `safes_framework.access.CountSource` and its batch method
`marginals`, so AIM, MST and any plugin run on them unchanged. `choose_backend` is the rule
`SafesChain` and `safes run` use; see docs/scale.md.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from ..access import CountSource, InMemorySource
from ..errors import ConfigError
from ..ingest import (
    DEFAULT_CHUNK_ROWS,
    code_dtype,
    encode_table,
    file_format,
    is_table_path,
    parquet_rows,
)
from ..schema import Schema

logger = logging.getLogger(__name__)

#: Backends by name ("auto" applies `choose_backend`).
BACKENDS = ("auto", "memory", "duckdb", "dask")

#: "auto" keeps the codes in memory while they take at most this share of the memory that is
#: available when the run starts; larger tables are counted in place by DuckDB.
MEMORY_SHARE = 0.25


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux), or 4 GiB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def estimated_code_bytes(data: Any, schema: Schema) -> int | None:
    """Bytes the compact codes of `data` would take in memory, or None when unknown.

    Parquet files and Arrow tables know their row count; a CSV file's is estimated from its
    size (at least 2 bytes a cell); a DuckDB relation's is unknown without a scan.
    """
    per_row = sum(code_dtype(c.size).itemsize for c in schema.columns)
    if is_table_path(data):
        if file_format(data) == "parquet":
            return parquet_rows(data) * per_row
        size = os.path.getsize(data)
        if str(data).lower().endswith((".gz", ".bz2", ".zst", ".xz", ".zip")):
            size *= 8  # a typical text compression ratio
        return size // (2 * len(schema.columns)) * per_row
    if isinstance(data, pd.DataFrame):
        return len(data) * per_row
    rows = getattr(data, "num_rows", None)
    if isinstance(rows, int):
        return rows * per_row
    return None


def choose_backend(data: Any, schema: Schema, backend: str = "auto") -> str:
    """The backend that serves `data`: "memory", "duckdb" or "dask".

    "auto" picks "dask" for a Dask DataFrame, "memory" for a pandas DataFrame (it is in
    memory already, and its codes take less), "memory" (compact codes in memory) for a file
    or Arrow table whose codes fit in `MEMORY_SHARE` of the available memory, and "duckdb"
    otherwise (also for a DuckDB relation, whose size is unknown without a scan). The choice
    depends on the size of the table, so it is never recorded in a release.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if type(data).__module__.startswith("dask"):
        return "dask"
    if isinstance(data, pd.DataFrame):
        return "memory"
    need = estimated_code_bytes(data, schema)
    if need is None:
        return "duckdb"
    limit = MEMORY_SHARE * available_memory()
    choice = "memory" if need <= limit else "duckdb"
    logger.info("backend auto: codes need about %.3g GB, limit %.3g GB: %s",
                need / 1e9, limit / 1e9, choice)
    return choice


def open_source(
    data: Any,
    schema: Schema,
    *,
    backend: str = "auto",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> CountSource:
    """The `CountSource` that serves `data` (checked against `schema` before it returns).

    Args:
        data: a pandas DataFrame, a CSV or Parquet path, a pyarrow Table, a DuckDB relation,
            or (backend "dask") a Dask DataFrame.
        schema: the public schema.
        backend: "auto", "memory", "duckdb" or "dask" (see `choose_backend`).
        chunk_rows: rows per chunk when encoding into memory.

    Raises:
        ConfigError, DataError: bad settings or input; nothing has been spent.
    """
    choice = choose_backend(data, schema, backend)
    if choice == "memory":
        codes = encode_table(data, schema, chunk_rows=chunk_rows)
        return InMemorySource(list(codes.arrays), schema.sizes)
    if choice == "duckdb":
        from .duckdb import DuckDBSource

        return DuckDBSource(data, schema)
    from .dask import DaskSource

    return DaskSource(data, schema)
