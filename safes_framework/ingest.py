"""Chunked input: read a table (CSV, Parquet, Arrow, DuckDB, pandas) and encode it to compact codes.

The sensitive table is never held whole as labels: it is read `chunk_rows` rows at a time,
each chunk is checked against the schema and encoded to codes, and the codes are kept in the
smallest unsigned integer type that holds each column's domain (uint8 for a domain of at most
256 values), one array per column. 10^8 rows of 14 columns of uint8 codes are 1.4 GB, where
int64 codes would take 11 GB and the labels many times that.

A value outside the declared domain raises the schema's error for it (`DomainError`,
`DtypeError`), naming the column, the first bad value and its row (1-based, in file order).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError, EmptyDataError, MissingColumnError
from .schema import Categorical, Schema, check_unique_columns

logger = logging.getLogger(__name__)

#: Rows per chunk when reading and encoding (about 100 MB of labels for 14 columns).
DEFAULT_CHUNK_ROWS = 1 << 20

#: File formats read in chunks, by suffix (a compressed CSV keeps its compression suffix).
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION = (".gz", ".bz2", ".zst", ".xz", ".zip")


def code_dtype(size: int) -> np.dtype:
    """The smallest unsigned integer type that holds the codes 0..size-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def file_format(path: str | os.PathLike[str]) -> str:
    """"csv" or "parquet", from the file's suffix (`.csv`, `.csv.gz`, `.parquet`, `.pq`).

    Raises:
        ConfigError: another suffix.
    """
    name = Path(path).name.lower()
    for comp in _COMPRESSION:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    fmt = FORMATS.get(Path(name).suffix)
    if fmt is None:
        raise ConfigError(
            f"cannot tell the format of {str(path)!r} from its name; use a .csv (optionally "
            "compressed, e.g. .csv.gz) or .parquet file"
        )
    return fmt


@dataclass(frozen=True)
class CodeColumns:
    """An encoded table: one array of compact integer codes per schema column.

    Attributes:
        names: column names, in schema order.
        arrays: the code arrays (each of `code_dtype(size)`), in the same order.
        sizes: domain size of every column.
    """

    names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]
    sizes: dict[str, int]

    @property
    def rows(self) -> int:
        return int(self.arrays[0].shape[0]) if self.arrays else 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)

    def matrix(self) -> np.ndarray:
        """The codes as one (n, d) matrix of int64 (a copy)."""
        out = np.empty((self.rows, len(self.arrays)), dtype=np.int64)
        for j, a in enumerate(self.arrays):
            out[:, j] = a
        return out


# -- reading in chunks --------------------------------------------------------------------------


def _csv_dtypes(schema: Schema) -> dict[str, Any]:
    """Read string-category columns as strings in every chunk (no per-chunk type guessing)."""
    return {
        c.name: str
        for c in schema.columns
        if isinstance(c, Categorical) and all(isinstance(v, str) for v in c.categories)
    }


def _check_columns(schema: Schema, present: Sequence[str], source: str) -> None:
    check_unique_columns(present, source=source)
    missing = [n for n in schema.names if n not in present]
    if missing:
        raise MissingColumnError(
            f"column {missing[0]!r} is declared in the schema but missing from {source} "
            f"(it has {list(map(str, present))})",
            column=missing[0],
        )
    extra = [str(c) for c in present if c not in schema.names]
    if extra:
        warnings.warn(
            f"columns {extra} are not declared in the schema and are ignored", stacklevel=3
        )


def parquet_rows(path: str | os.PathLike[str]) -> int:
    """Rows of a Parquet file, from its footer (nothing else is read)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def iter_file(
    path: str | os.PathLike[str], schema: Schema, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The schema's columns of a CSV or Parquet file, `chunk_rows` rows at a time.

    Raises:
        ConfigError: the file cannot be opened or parsed (the message says which).
        MissingColumnError: a declared column is absent (from the header, before any row).
    """
    fmt = file_format(path)
    source = repr(str(path))
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            _check_columns(schema, pf.schema_arrow.names, source)
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=list(schema.names)):
                yield batch.to_pandas()
        else:
            from .io import csv_header

            # The raw header: pandas would rename a repeated name `name.1` silently.
            _check_columns(schema, csv_header(Path(path)), source)
            yield from pd.read_csv(
                path, usecols=list(schema.names), dtype=_csv_dtypes(schema),
                chunksize=chunk_rows,
            )
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {source} as {fmt}: {exc}") from None
    except ImportError as exc:
        raise ConfigError(
            f"reading Parquet needs pyarrow (pip install 'safes-framework[scale]'): {exc}"
        ) from None


def iter_arrow(table: Any, schema: Schema, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
               ) -> Iterator[pd.DataFrame]:
    """The schema's columns of a pyarrow Table or RecordBatchReader, chunk by chunk."""
    names = list(table.schema.names)
    _check_columns(schema, names, "the Arrow table")
    if hasattr(table, "to_batches"):
        batches: Iterable[Any] = table.select(list(schema.names)).to_batches(
            max_chunksize=chunk_rows
        )
    else:
        batches = table
    for batch in batches:
        frame = batch.to_pandas()
        yield frame[list(schema.names)]


def iter_duckdb(relation: Any, schema: Schema, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
                ) -> Iterator[pd.DataFrame]:
    """The schema's columns of a DuckDB relation, chunk by chunk (DuckDB scans it)."""
    _check_columns(schema, list(relation.columns), "the DuckDB relation")
    cols = ", ".join(_quote(n) for n in schema.names)
    projected = relation.project(cols)
    reader = (projected.to_arrow_reader(chunk_rows) if hasattr(projected, "to_arrow_reader")
              else projected.fetch_record_batch(chunk_rows))
    for batch in reader:
        yield batch.to_pandas()


def iter_frame(df: pd.DataFrame, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A DataFrame in row chunks (views)."""
    for start in range(0, len(df), chunk_rows):
        yield df.iloc[start : start + chunk_rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- encoding ----------------------------------------------------------------------------------


def _first_row(chunk: pd.DataFrame, exc: DataError) -> int | None:
    """0-based row within `chunk` of the value an encoding error names (None if not found)."""
    if exc.column is None or exc.column not in chunk.columns:
        return None
    values = chunk[exc.column]
    value = exc.value
    try:
        hit = values.isna() if value is None or value != value else values == value
        where = np.flatnonzero(np.asarray(hit, dtype=bool))
    except (TypeError, ValueError):
        return None
    return int(where[0]) if where.size else None


def encode_chunks(
    schema: Schema,
    chunks: Iterable[pd.DataFrame],
    *,
    source: str = "the table",
    rows: int | None = None,
) -> CodeColumns:
    """Check and encode chunks of a table into compact codes.

    Each chunk is encoded with the schema (`Schema.encode`: the same checks, the same codes),
    then narrowed to `code_dtype` of each column. With `rows` known (a Parquet footer, an Arrow
    table) the code arrays are allocated once; otherwise the chunks' codes are joined at the
    end, one column at a time.

    Raises:
        DomainError, DtypeError: naming the column, the first bad value and its row.
        EmptyDataError: the table has no rows.
    """
    dtypes = [code_dtype(c.size) for c in schema.columns]
    arrays: list[np.ndarray] | None = None
    if rows is not None:
        arrays = [np.empty(rows, dtype=dt) for dt in dtypes]
    parts: list[list[np.ndarray]] = [[] for _ in schema.columns]
    done = 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        try:
            codes = [c.encode(chunk[c.name]) for c in schema.columns]
        except DataError as exc:
            where = _first_row(chunk, exc)
            row = f"row {done + where + 1:,}" if where is not None else (
                f"rows {done + 1:,}-{done + len(chunk):,}"
            )
            raise type(exc)(f"{exc} ({row} of {source})", column=exc.column,
                            value=exc.value) from None
        n = len(chunk)
        for j, (c, dt) in enumerate(zip(codes, dtypes, strict=True)):
            if arrays is not None:
                if done + n > arrays[j].shape[0]:
                    raise DataError(f"{source} has more rows than its declared {rows:,}")
                arrays[j][done : done + n] = c
            else:
                parts[j].append(c.astype(dt))
        done += n
    if done == 0:
        raise EmptyDataError(f"{source} has no rows")
    if arrays is None:
        arrays = []
        for j in range(len(parts)):
            arrays.append(np.concatenate(parts[j]))
            parts[j] = []
    elif done != arrays[0].shape[0]:
        arrays = [a[:done] for a in arrays]
    logger.info("encoded %s: %d columns, %.3g MB of codes", source, len(arrays),
                sum(a.nbytes for a in arrays) / 1e6)
    return CodeColumns(schema.names, tuple(arrays), schema.sizes)


def is_table_path(data: object) -> bool:
    return isinstance(data, (str, os.PathLike))


def encode_table(
    data: Any, schema: Schema, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> CodeColumns:
    """Encode a table given as a DataFrame, a CSV/Parquet path, an Arrow table or reader, or a
    DuckDB relation, chunk by chunk, into compact codes.

    Raises:
        ConfigError: `data` is none of those, or its file cannot be read.
        DataError: see `encode_chunks`.
    """
    if isinstance(data, pd.DataFrame):
        _check_columns(schema, list(data.columns), "the table")
        return encode_chunks(schema, iter_frame(data, chunk_rows=chunk_rows), rows=len(data))
    if is_table_path(data):
        rows = None
        if file_format(data) == "parquet":
            try:
                rows = parquet_rows(data)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read {str(data)!r} as parquet: {exc}") from None
        return encode_chunks(
            schema, iter_file(data, schema, chunk_rows=chunk_rows),
            source=repr(str(data)), rows=rows,
        )
    kind = _table_kind(data)
    if kind == "arrow":
        rows = getattr(data, "num_rows", None)
        return encode_chunks(
            schema, iter_arrow(data, schema, chunk_rows=chunk_rows),
            source="the Arrow table", rows=rows,
        )
    if kind == "duckdb":
        return encode_chunks(
            schema, iter_duckdb(data, schema, chunk_rows=chunk_rows), source="the DuckDB relation"
        )
    raise ConfigError(
        "data must be a pandas DataFrame, a path to a CSV or Parquet file, a pyarrow Table or "
        f"RecordBatchReader, or a DuckDB relation; got {type(data).__name__}"
    )


def _table_kind(data: object) -> str | None:
    """"arrow", "duckdb" or None, by the object's type (without importing either package)."""
    module = type(data).__module__ or ""
    if module.startswith("pyarrow"):
        return "arrow"
    if module.startswith(("duckdb", "_duckdb")):
        return "duckdb"
    return None
